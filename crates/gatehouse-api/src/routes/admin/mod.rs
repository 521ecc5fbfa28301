//! The admin API and console, served on their own listener (`server.admin.address`). Every API request needs
//! `Authorization: Bearer <admin key>`; only the console's own files load without one (the page asks for it).

mod identity_providers;
mod users;

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use crate::{ApiError, AppState, error::SharedErrorAnswers, extract::bearer_token, routes::login_page::asset};

const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                           img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ADMIN_ERROR_ANSWERS: SharedErrorAnswers = SharedErrorAnswers { behind_admin_key: true };

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Gatehouse admin API", description = "Identity-provider settings, users and the audit log. \
        Served on `server.admin.address`; every request needs `Authorization: Bearer <admin key>`."),
    paths(
        identity_providers::get,
        identity_providers::update,
        identity_providers::add_secret,
        identity_providers::remove_secret,
        identity_providers::add_certificate,
        identity_providers::remove_certificate,
        identity_providers::admin_consent,
        users::list,
        users::show,
        users::delete,
        users::revoke_sessions,
        users::revoke_session,
        users::unlink_identity,
        users::audit_logs,
        metrics,
    ),
    modifiers(&AdminKeyAuth, &ADMIN_ERROR_ANSWERS),
    security(("admin_key" = []))
)]
pub struct AdminApiDoc;

#[derive(Debug)]
struct AdminKeyAuth;

impl Modify for AdminKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The admin router. Pure, like the public one: tests can drive it in-process.
/// The admin API and console for the listener bound at `bound` (its port is needed to check `Host`).
pub fn admin_app(state: AppState, bound: SocketAddr) -> Router {
    let api = Router::new()
        .route("/identity-providers", get(identity_providers::get).put(identity_providers::update))
        .route("/identity-providers/microsoft/secrets", axum::routing::post(identity_providers::add_secret))
        .route("/identity-providers/microsoft/secrets/{id}", delete(identity_providers::remove_secret))
        .route("/identity-providers/microsoft/certificates", axum::routing::post(identity_providers::add_certificate))
        .route("/identity-providers/microsoft/certificates/{id}", delete(identity_providers::remove_certificate))
        .route("/identity-providers/microsoft/admin-consent", get(identity_providers::admin_consent))
        .route("/users", get(users::list))
        .route("/users/{id}", get(users::show).delete(users::delete))
        .route("/users/{id}/sessions", delete(users::revoke_sessions))
        .route("/users/{id}/sessions/{session_id}", delete(users::revoke_session))
        .route("/users/{id}/identities/{identity_id}", delete(users::unlink_identity))
        .route("/audit-logs", get(users::audit_logs))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(AdminApiDoc::openapi()) }))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin_key));
    let router = Router::new()
        .route(
            "/",
            get(|| async {
                asset(CONSOLE_CSP, "text/html; charset=utf-8", include_str!("../../../assets/admin/console.html"))
            }),
        )
        .route(
            "/assets/console.js",
            get(|| async {
                asset(CONSOLE_CSP, "text/javascript; charset=utf-8", include_str!("../../../assets/admin/console.js"))
            }),
        )
        .route(
            "/assets/console.css",
            get(|| async {
                asset(CONSOLE_CSP, "text/css; charset=utf-8", include_str!("../../../assets/admin/console.css"))
            }),
        )
        .merge(api)
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state((state.clone(), bound), require_own_host));
    crate::app::with_layers(router.with_state(state.clone()), &state, crate::metrics::Listener::Admin, None)
}

/// Refuses requests whose `Host` is not this listener's (DNS rebinding), before anything else runs.
async fn require_own_host(
    State((state, bound)): State<(AppState, SocketAddr)>,
    request: Request,
    next: Next,
) -> Response {
    let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("");
    if state.config().server.admin.allows_host(host, bound) {
        next.run(request).await
    } else {
        ApiError::status(StatusCode::MISDIRECTED_REQUEST).into_response()
    }
}

/// Lets a request through only with a valid admin key, and hands the handlers who it is.
async fn require_admin_key(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let actor = match bearer_token(request.headers()) {
        Some(key) => state.admin_keys().authenticate(key).await,
        None => Ok(None),
    };
    match actor {
        Ok(Some(actor)) => {
            request.extensions_mut().insert(actor);
            let mut response = next.run(request).await;
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(None) => {
            let mut response = ApiError::unauthorized().into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Prometheus metrics: seconds until each identity-provider credential expires (negative once expired), and
/// how often a refused credential made Gatehouse try the next one.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let providers = state.identity_providers();
    let saved = providers.current().await?;
    let now = state.clock().now();
    let mut text = String::from(
        "# HELP gatehouse_credential_expiry_seconds Seconds until an identity-provider credential expires.\n\
         # TYPE gatehouse_credential_expiry_seconds gauge\n",
    );
    for credential in providers.credentials(&saved.settings) {
        if let Some(at) = credential.expires_at {
            let name = credential.describe();
            let (kind, label) = name.split_once(' ').unwrap_or(("credential", &name));
            text.push_str(&format!(
                "gatehouse_credential_expiry_seconds{{provider=\"microsoft\",kind=\"{kind}\",id=\"{}\",name=\"{}\"}} {}\n",
                credential.id,
                label.replace(['"', '\\', '\n'], ""),
                at.millis_after(now).div_euclid(1000)
            ));
        }
    }
    let failovers = state.third_party().microsoft().map_or(0, |client| client.credential_failovers());
    text.push_str(&format!(
        "# HELP gatehouse_credential_failovers_total Credentials refused by the provider, so that the next was tried.\n\
         # TYPE gatehouse_credential_failovers_total counter\n\
         gatehouse_credential_failovers_total{{provider=\"microsoft\"}} {failovers}\n\
         # HELP gatehouse_settings_version Version of the saved identity-provider settings in force.\n\
         # TYPE gatehouse_settings_version gauge\n\
         gatehouse_settings_version {}\n\
         # HELP gatehouse_signing_key_reloads_total Session signing keys reloaded because a token named a key rotated in elsewhere.\n\
         # TYPE gatehouse_signing_key_reloads_total counter\n\
         gatehouse_signing_key_reloads_total{{cause=\"unknown_kid\"}} {}\n",
        state.settings_version(),
        state.keys().unknown_kid_reloads()
    ));
    text.push_str(&state.counters().render());
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(response)
}
