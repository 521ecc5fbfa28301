use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{AppState, dto::provider_display_name};

/// Every public key that may still verify a live session token. Short cache: a rotated key must reach relying
/// parties quickly (they also refetch on an unknown `kid`).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.keys().current().await.jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}

/// Hanko's legacy (v2) public configuration, for older SDKs.
pub async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    let config = state.config();
    let providers: Vec<&str> = state.third_party().enabled_providers().into_iter().map(provider_display_name).collect();
    Json(json!({
        "password": { "enabled": false, "min_password_length": 8 },
        "emails": {
            "require_verification": config.email.require_verification,
            "max_num_of_addresses": config.email.limit,
        },
        "providers": providers,
        "account": { "allow_deletion": config.account.allow_deletion, "allow_signup": config.account.allow_signup },
        "use_enterprise": false,
    }))
}
