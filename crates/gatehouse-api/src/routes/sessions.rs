use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use gatehouse_app::sessions::Authenticated;
use gatehouse_core::clock::Timestamp;

use crate::{
    ApiError, AppState, cookies,
    dto::ClaimsView,
    error::ErrorBody,
    extract::{AppJson, Meta, SignedIn, session_token},
};

/// Hanko's session check: `{"is_valid": false}`, or the claims when valid.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionValidation {
    is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<ClaimsView>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<Uuid>,
}

impl From<Option<Authenticated>> for SessionValidation {
    fn from(session: Option<Authenticated>) -> Self {
        match session {
            Some(Authenticated { claims, .. }) => Self {
                is_valid: true,
                claims: Some(ClaimsView::from(&claims)),
                expiration_time: Some(Timestamp::from_secs(claims.exp).rfc3339()),
                user_id: Some(claims.sub.into()),
            },
            None => Self { is_valid: false, claims: None, expiration_time: None, user_id: None },
        }
    }
}

/// Why validation can answer 503.
const UNCHECKED: &str = "the database cannot be reached, so the session could not be checked; it may still be valid";

/// `GET /sessions/validate`: 200 saying whether the request's session is valid; 503 when the database cannot be
/// reached, so that an outage never tells an app that a good session is invalid.
#[utoipa::path(get, path = "/sessions/validate", tag = "session", security((), ("session" = [])),
    responses((status = 200, body = SessionValidation), (status = 503, body = ErrorBody, description = UNCHECKED)))]
pub async fn validate(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SessionValidation>, ApiError> {
    let session = match session_token(&headers, &state.config().session.cookie.name) {
        Some(token) => state.sessions().authenticate(token).await?,
        None => None,
    };
    Ok(Json(session.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    session_token: String,
}

/// `POST /sessions/validate`: validates a token given in the body and marks the session used; 503, as for `GET`,
/// when the database cannot be reached.
#[utoipa::path(post, path = "/sessions/validate", tag = "session", request_body = ValidateBody,
    responses((status = 200, body = SessionValidation), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody, description = UNCHECKED)))]
pub async fn validate_token(
    State(state): State<AppState>,
    AppJson(body): AppJson<ValidateBody>,
) -> Result<Json<SessionValidation>, ApiError> {
    let session = state.sessions().authenticate(&body.session_token).await?;
    if let Some(session) = &session {
        state.sessions().touch(session).await?;
    }
    Ok(Json(session.into()))
}

/// `POST /logout`: deletes the session and expires the cookie.
#[utoipa::path(post, path = "/logout", tag = "session", security(("session" = [])),
    responses((status = 204, description = "signed out; the session cookie is expired"), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    Meta(meta): Meta,
    SignedIn(session): SignedIn,
) -> Result<Response, ApiError> {
    state.sessions().sign_out(&session, &meta).await?;
    Ok((StatusCode::NO_CONTENT, cookies::session_removal(&state.config().session)).into_response())
}
