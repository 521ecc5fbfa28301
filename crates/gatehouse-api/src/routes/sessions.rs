use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiError, AppState,
    clock::rfc3339_secs,
    dto::claims_json,
    extract::{AppJson, session_token},
    services::{audit::RequestMeta, session::Authenticated},
};

fn validation_json(session: Option<Authenticated>) -> Json<Value> {
    Json(match session {
        Some(Authenticated { claims, .. }) => json!({
            "is_valid": true,
            "claims": claims_json(&claims),
            "expiration_time": rfc3339_secs(claims.exp),
            "user_id": claims.sub,
        }),
        None => json!({ "is_valid": false }),
    })
}

/// `GET /sessions/validate`: always 200; says whether the request's session is valid.
pub async fn validate(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let session = match session_token(&headers, &state.config().session.cookie.name) {
        Some(token) => state.sessions().authenticate(token).await?,
        None => None,
    };
    Ok(validation_json(session))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    session_token: String,
}

/// `POST /sessions/validate`: validates a token given in the body and marks the session used.
pub async fn validate_token(
    State(state): State<AppState>,
    AppJson(body): AppJson<ValidateBody>,
) -> Result<Json<Value>, ApiError> {
    let session = state.sessions().authenticate(&body.session_token).await?;
    if let Some(session) = &session {
        state.store().touch_session(session.session.id, crate::clock::now_ms()).await?;
    }
    Ok(validation_json(session))
}

/// `POST /logout`: deletes the session and expires the cookie.
pub async fn logout(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Authenticated,
) -> Result<Response, ApiError> {
    state.store().delete_session(session.session.id).await?;
    state.audit().record("user_logged_out", Some(session.claims.sub), None, &meta).await;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, state.sessions().expired_cookie())]).into_response())
}
