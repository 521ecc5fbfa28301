use axum::{Json, extract::State};
use serde_json::Value;

use crate::{ApiError, AppState, dto::user_json, services::session::Authenticated};

/// `GET /me`: the signed-in user.
pub async fn me(State(state): State<AppState>, session: Authenticated) -> Result<Json<Value>, ApiError> {
    let user = state.store().find_user(session.claims.sub).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&user)))
}
