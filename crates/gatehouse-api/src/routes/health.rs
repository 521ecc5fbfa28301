use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// The process answers.
pub async fn alive() -> Json<Value> {
    Json(json!({ "alive": true }))
}

/// The process can serve: its database answers.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.store().ping().await {
        Ok(()) => Ok(Json(json!({ "ready": true }))),
        Err(error) => {
            tracing::warn!(%error, "readiness check: database unavailable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"))
        }
    }
}
