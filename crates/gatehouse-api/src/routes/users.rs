use axum::{Json, extract::State};

use crate::{ApiError, AppState, dto::UserView, error::ErrorBody, extract::SignedIn};

/// `GET /me`: the signed-in user.
#[utoipa::path(get, path = "/me", tag = "session", security(("session" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<Json<UserView>, ApiError> {
    let user = state.users().find(session.user_id()).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(UserView::from(&user)))
}
