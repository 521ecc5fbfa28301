use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use gatehouse_core::ids::{EmailId, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use gatehouse_app::users::EmailRemoval;
use gatehouse_core::email::Email;

use crate::{
    ApiError, AppState, cookies,
    dto::{UserDetails, UserEmail, UserView},
    error::ErrorBody,
    extract::{AppJson, AppPath, Meta, SignedIn},
};

/// `GET /me`: the signed-in user.
#[utoipa::path(get, path = "/me", tag = "session", security(("session" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<Json<UserView>, ApiError> {
    let user = state.users().find(session.user_id()).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(UserView::from(&user)))
}

/// `GET /users/{id}`: the signed-in user again, as the SDK's `user.getCurrent()` reads it after `/me`. Like Hanko,
/// any other id (malformed ones included) is 403: a session reads only its own user.
#[utoipa::path(get, path = "/users/{id}", tag = "session", security(("session" = [])),
    params(("id" = String, Path, description = "the signed-in user's id")),
    responses((status = 200, body = UserDetails), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn user(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    AppPath(id): AppPath<String>,
) -> Result<Json<UserDetails>, ApiError> {
    if id.parse::<UserId>().ok() != Some(session.user_id()) {
        return Err(ApiError::status(StatusCode::FORBIDDEN));
    }
    let user = state.users().find(session.user_id()).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(UserDetails::from(&user)))
}

/// `GET /emails`: the signed-in user's addresses.
#[utoipa::path(get, path = "/emails", tag = "session", security(("session" = [])),
    responses((status = 200, body = Vec<UserEmail>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn emails(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Json<Vec<UserEmail>>, ApiError> {
    let user = state.users().find(session.user_id()).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(UserEmail::all_of(&user)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserLookupBody {
    #[allow(dead_code, reason = "checked like Hanko checks it; the answer never depends on it")]
    #[schema(value_type = String, format = Email)]
    email: Email,
}

/// `POST /user`: Hanko's "which way can this address sign in" lookup (the legacy SDK's `user.getInfo`). Gatehouse
/// signs no one in by email, so the answer is always Hanko's 404 "no such user": that sends Hanko's frontends to
/// their other ways in, and it never tells a stranger which addresses have accounts.
#[utoipa::path(post, path = "/user", tag = "session", request_body = UserLookupBody,
    responses((status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn lookup(AppJson(_body): AppJson<UserLookupBody>) -> ApiError {
    ApiError::not_found()
}

/// `POST /users`: Hanko's sign-up by email (the legacy SDK's `user.create`). Gatehouse has none: users come from
/// Sign in with Microsoft. Hanko answers 403 when sign-up is disabled, before reading the body; so does this.
#[utoipa::path(post, path = "/users", tag = "session",
    responses((status = 403, body = ErrorBody)))]
pub async fn create() -> ApiError {
    ApiError::status(StatusCode::FORBIDDEN)
}

/// `DELETE /user`: the signed-in user deletes their account, when `account.allow_deletion` is on; otherwise 404,
/// as in Hanko, which then has no such route.
#[utoipa::path(delete, path = "/user", tag = "session", security(("session" = [])),
    responses((status = 204, description = "deleted with every session; the session cookie is expired"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    SignedIn(session): SignedIn,
) -> Result<Response, ApiError> {
    if !state.config().account.allow_deletion {
        return Err(ApiError::not_found());
    }
    state.users().delete(session.user_id(), Some(&meta)).await?;
    Ok((StatusCode::NO_CONTENT, cookies::session_removal(&state.config().session)).into_response())
}

/// `DELETE /emails/{id}`: removes one of the signed-in user's secondary addresses; the primary one is 409, as in
/// Hanko.
#[utoipa::path(delete, path = "/emails/{id}", tag = "session", security(("session" = [])),
    params(("id" = Uuid, Path, description = "one of the signed-in user's email ids")),
    responses((status = 204, description = "removed"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_email(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    AppPath(email_id): AppPath<EmailId>,
) -> Result<StatusCode, ApiError> {
    match state.users().remove_email(session.user_id(), email_id).await? {
        EmailRemoval::Removed => Ok(StatusCode::NO_CONTENT),
        EmailRemoval::Primary => {
            Err(ApiError::new(StatusCode::CONFLICT, "the primary email address cannot be deleted"))
        }
        EmailRemoval::NotFound => Err(ApiError::not_found()),
    }
}

/// `POST /emails`: 403, see [`email_changes_unavailable`].
#[utoipa::path(post, path = "/emails", tag = "session", security(("session" = [])),
    responses((status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_email(SignedIn(_session): SignedIn) -> ApiError {
    email_changes_unavailable()
}

/// `POST /emails/{id}/set_primary`: 403, see [`email_changes_unavailable`].
#[utoipa::path(post, path = "/emails/{id}/set_primary", tag = "session", security(("session" = [])),
    params(("id" = String, Path, description = "an email id")),
    responses((status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_primary_email(SignedIn(_session): SignedIn) -> ApiError {
    email_changes_unavailable()
}

/// Addresses come from Sign in with Microsoft, proven by the provider, and the primary one is the one the sign-in
/// brought. Gatehouse sends no passcodes, so it cannot prove an address a user types, nor should an address the
/// provider did not prove become the one sessions name. Hanko's answer for a feature that is off is 403.
fn email_changes_unavailable() -> ApiError {
    ApiError::status(StatusCode::FORBIDDEN)
}
