//! The router: every route, and the layers every request passes through.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, Request, StatusCode, header},
    middleware::{from_fn, from_fn_with_state, map_response, map_response_with_state},
    routing::{delete, get, post},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use gatehouse_core::{first_seen::FirstSeen, origin::AllowedOrigins};

use crate::{
    ApiError, AppState,
    client_address::resolve_client_address,
    cookies::{X_AUTH_TOKEN, X_SESSION_LIFETIME, X_SESSION_RETENTION},
    csrf::{WriteGuard, is_own_origin, refuse_forged_writes, warn_refused_origin},
    error::{SharedErrorAnswers, render_plain_errors},
    flow,
    metrics::{Listener, count_response},
    request_log::log_request,
    routes::{health, login_page, sessions, thirdparty, users, well_known},
};

const PUBLIC_ERROR_ANSWERS: SharedErrorAnswers = SharedErrorAnswers { behind_admin_key: false };

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Gatehouse public API", description = "Hanko's HTTP API as Gatehouse serves it: the flow API that \
        Hanko's frontends speak, sessions, JWKS and Sign in with Microsoft. Errors outside the flow API are \
        `{\"code\": <status>, \"message\": <text>}`."),
    paths(
        login_page::page,
        health::alive,
        health::ready,
        well_known::jwks,
        well_known::config,
        sessions::validate,
        sessions::validate_token,
        sessions::logout,
        users::me,
        users::user,
        users::emails,
        users::lookup,
        users::create,
        users::delete,
        users::add_email,
        users::delete_email,
        users::set_primary_email,
        thirdparty::auth,
        thirdparty::callback,
        thirdparty::callback_post,
        thirdparty::token,
        flow::login,
        flow::registration,
        flow::profile,
    ),
    modifiers(&SessionAuth, &PUBLIC_ERROR_ANSWERS),
)]
pub struct PublicApiDoc;

/// The session JWT, as `Authorization: Bearer` (the session cookie works too).
#[derive(Debug)]
struct SessionAuth;

impl Modify for SessionAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = utoipa::openapi::security::HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT");
        components.add_security_scheme("session", SecurityScheme::Http(Http::from(bearer)));
    }
}

/// Requests larger than this are refused with 413: no endpoint needs more.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The whole public API as a router. Pure: no sockets, so tests can also drive it in-process.
pub fn app(state: AppState) -> Router {
    let refused_origins = Arc::new(FirstSeen::default());
    let router = Router::new()
        .route("/", get(login_page::page))
        .route("/assets/login.js", get(login_page::script))
        .route("/assets/login.css", get(login_page::stylesheet))
        .route("/health/alive", get(health::alive))
        .route("/health/ready", get(health::ready))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route("/.well-known/config", get(well_known::config))
        .route("/sessions/validate", get(sessions::validate).post(sessions::validate_token))
        .route("/logout", post(sessions::logout))
        .route("/me", get(users::me))
        .route("/users/{id}", get(users::user))
        .route("/users", post(users::create))
        .route("/user", post(users::lookup).delete(users::delete))
        .route("/emails", get(users::emails).post(users::add_email))
        .route("/emails/{id}", delete(users::delete_email))
        .route("/emails/{id}/set_primary", post(users::set_primary_email))
        .route("/thirdparty/auth", get(thirdparty::auth))
        .route("/token", post(thirdparty::token))
        .route("/login", post(flow::login))
        .route("/registration", post(flow::registration))
        .route("/profile", post(flow::profile))
        // Every route above: writes only as JSON and only from this origin or an allowed one (see `csrf`).
        .route_layer(from_fn_with_state(
            Arc::new(WriteGuard::new(&state.config().server.public.cors.allow_origins, refused_origins.clone())),
            refuse_forged_writes,
        ))
        // Added after the guard on purpose: Microsoft's form_post is a cross-site form by design. Its sealed
        // single-use state (and the binding cookie or PKCE verifier) is what protects it.
        .route("/thirdparty/callback", get(thirdparty::callback).post(thirdparty::callback_post))
        .route("/openapi.json", get(|| async { Json(PublicApiDoc::openapi()) }))
        .fallback(|| async { ApiError::not_found() })
        .layer(from_fn_with_state(state.trusted_proxies().clone(), resolve_client_address));
    let cors = cors(&state, refused_origins);
    with_layers(router.with_state(state.clone()), &state, Listener::Public, Some(cors))
}

/// The layers every request of either listener passes through: responses counted for `/metrics`, request ids,
/// one info line per request (see `request_log`), tracing without query strings, `nosniff` on every response, CORS
/// (public listener only), Hanko's error shape for every error, panics caught, requests cut off after
/// `server.timeouts.request` (a body sent slowly included), bodies limited.
pub fn with_layers(router: Router, state: &AppState, listener: Listener, cors: Option<CorsLayer>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let request_timeout = state.config().server.timeouts.request.as_duration();
    router.layer(
        ServiceBuilder::new()
            // Outermost, so that the status counted is the one sent: timeouts and caught panics included.
            .layer(map_response_with_state((state.clone(), listener), count_response))
            // No browser may guess a type other than the one sent: a JSON answer must never run as a script.
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            // Inside the request id (the line names it), outside everything that may answer instead of the handler.
            .layer(from_fn(log_request))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                // The path only: query strings carry codes, states and tokens that must never reach a log.
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
                )
            }))
            .layer(PropagateRequestIdLayer::new(request_id))
            .option_layer(cors)
            .layer(map_response(render_plain_errors))
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
            .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES)),
    )
}

/// Hanko's CORS: exact origins from the allow-list, credentials, the session headers exposed. A preflight from a
/// refused origin is logged once (see [`warn_refused_origin`]): Hanko's SDKs send JSON, so every call they make is
/// preflighted. Other requests with an origin are not logged here: Microsoft's form_post to the callback carries
/// its own origin, and writes are logged by the write guard.
fn cors(state: &AppState, refused_origins: Arc<FirstSeen>) -> CorsLayer {
    let config = state.config();
    let origins = AllowedOrigins::new(&config.server.public.cors.allow_origins);
    let mut exposed = vec![
        X_SESSION_LIFETIME,
        X_SESSION_RETENTION,
        header::RETRY_AFTER,
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderName::from_static("x-ratelimit-reset"),
    ];
    if config.session.enable_auth_token_header {
        exposed.push(X_AUTH_TOKEN);
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, request| {
            let Ok(origin) = origin.to_str() else { return false };
            let allowed = origins.allows(origin);
            let preflight = request.method == Method::OPTIONS
                && request.headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            if !allowed && preflight && !is_own_origin(origin, &request.headers) {
                warn_refused_origin(&refused_origins, origin);
            }
            allowed
        }))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::PATCH, Method::POST, Method::DELETE])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed)
        .max_age(Duration::from_secs(7200))
}
