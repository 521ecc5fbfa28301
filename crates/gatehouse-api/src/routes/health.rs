use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    ApiError, AppState,
    error::{DATABASE_UNAVAILABLE, ErrorBody},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    alive: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    ready: bool,
}

/// The process answers.
#[utoipa::path(get, path = "/health/alive", tag = "health", responses((status = 200, body = Alive)))]
pub async fn alive() -> Json<Alive> {
    Json(Alive { alive: true })
}

/// The process can serve: its database answers and it is not shutting down. The check waits at most half a second
/// for the database, so a load balancer sees an outage as a quick 503, never as a probe that times out.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Ready),
        (status = 503, body = ErrorBody, description = "database unavailable, or the server is shutting down")))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if state.is_draining() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }
    match state.database_ready().await {
        Ok(()) => Ok(Json(Ready { ready: true })),
        Err(error) => {
            tracing::warn!(%error, "readiness check: database unavailable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE))
        }
    }
}
