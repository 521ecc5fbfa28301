use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ApiError, AppState, error::ErrorBody};

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

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Ready), (status = 503, body = ErrorBody, description = "database unavailable")))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    match state.database_ready().await {
        Ok(()) => Ok(Json(Ready { ready: true })),
        Err(error) => {
            tracing::warn!(%error, "readiness check: database unavailable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"))
        }
    }
}
