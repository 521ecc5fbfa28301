//! Hanko's third-party endpoints: `GET /thirdparty/auth` (legacy SDK), the provider callback (GET and
//! form_post), and `POST /token` (legacy one-time token exchange).
// The code utoipa generates for `params(...)` and `body = …` spells out paths that are already in scope.
#![allow(unused_qualifications)]

use axum::{
    Form, Json,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use gatehouse_app::{
    RequestMeta,
    thirdparty::{CallbackParams, Finished, STATE_COOKIE, StartRequest},
    token_exchange::{ExchangeError, Exchanged},
};
use gatehouse_core::{microsoft::consent::ADMIN_CONSENT_STATE, rate_limit::RateDecision};

use crate::{
    ApiError, AppState, cookies,
    error::ErrorBody,
    extract::{AppJson, Meta},
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthQuery {
    /// `microsoft`.
    #[param(required = true)]
    provider: Option<String>,
    /// Where to return after the sign-in; must match `third_party.allowed_redirect_urls`.
    redirect_to: Option<String>,
}

/// `GET /thirdparty/auth?provider=microsoft&redirect_to=…`: 307 to the provider. A `redirect_to` outside the
/// allow-list is a JSON 400, never a redirect.
#[utoipa::path(get, path = "/thirdparty/auth", tag = "third party", params(AuthQuery),
    responses((status = 307, description = "to the provider's authorize URL (`Location`)"),
        (status = 400, body = ErrorBody, description = "unknown or disabled provider, or `redirect_to` not allowed")))]
pub async fn auth(State(state): State<AppState>, Query(query): Query<AuthQuery>) -> Result<Response, ApiError> {
    let provider =
        query.provider.as_deref().ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "provider is required"))?;
    let started = state
        .start_sign_in(StartRequest { provider, redirect_to: query.redirect_to.as_deref(), ..Default::default() })
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, error.to_string()))?;
    let mut response = redirect(StatusCode::TEMPORARY_REDIRECT, started.authorize_url.as_str());
    if let Some(binding) = started.browser_binding {
        response.headers_mut().extend(cookies::state_binding(&state.config().session, &binding));
    }
    Ok(response)
}

/// The provider's answer: a code and our state, or an error.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CallbackForm {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// `True` when an administrator approved the app (the return from an admin-consent URL).
    admin_consent: Option<String>,
}

impl From<CallbackForm> for CallbackParams {
    fn from(form: CallbackForm) -> Self {
        Self { code: form.code, state: form.state, error: form.error, error_description: form.error_description }
    }
}

/// `GET /thirdparty/callback`: Microsoft's redirect back. Answers 307.
#[utoipa::path(get, path = "/thirdparty/callback", tag = "third party", params(CallbackForm),
    responses((status = 307, description = "to `redirect_to` with `hanko_token`, or with `error` and `error_description`"),
        (status = 400, description = "no page to return to (HTML), or a malformed parameter (JSON)",
            content((String = "text/html"), (ErrorBody = "application/json")))))]
pub async fn callback(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Query(query): Query<CallbackForm>,
) -> Response {
    finish(&state, &meta, &headers, query, StatusCode::TEMPORARY_REDIRECT).await
}

/// `POST /thirdparty/callback` (`response_mode=form_post`). Answers 303, so the browser does not re-post.
#[utoipa::path(post, path = "/thirdparty/callback", tag = "third party",
    request_body(content = CallbackForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "to `redirect_to` with `hanko_token`, or with `error` and `error_description`"),
        (status = 400, description = "no page to return to (HTML), or a malformed parameter (JSON)",
            content((String = "text/html"), (ErrorBody = "application/json")))))]
pub async fn callback_post(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Form(form): Form<CallbackForm>,
) -> Response {
    finish(&state, &meta, &headers, form, StatusCode::SEE_OTHER).await
}

async fn finish(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    form: CallbackForm,
    status: StatusCode,
) -> Response {
    if form.state.as_deref() == Some(ADMIN_CONSENT_STATE) {
        return admin_consent_outcome(form.admin_consent.as_deref() == Some("True") && form.error.is_none());
    }
    let binding = cookies::request_cookie(headers, STATE_COOKIE);
    let Finished { location, outcome } = state.finish_sign_in(form.into(), binding, meta).await;
    state
        .counters()
        .count_sign_in(outcome.as_ref().map(|signed_in| signed_in.outcome).map_err(|failure| failure.code.as_str()));
    let mut response = match location {
        Some(location) => redirect(status, location.as_str()),
        None => (
            StatusCode::BAD_REQUEST,
            Html("<!doctype html><title>Sign-in failed</title><h1>Sign-in failed</h1><p>The sign-in could not be completed and there is no page to return to. Please start again from the application.</p>"),
        )
            .into_response(),
    };
    response.headers_mut().extend(cookies::state_binding_removal(&state.config().session));
    response
}

/// The page an administrator lands on after an admin-consent URL (no sign-in follows it). Fixed text only: what
/// Microsoft's redirect carries could have been typed by anyone.
fn admin_consent_outcome(approved: bool) -> Response {
    let (title, text) = if approved {
        (
            "App approved",
            "The app is approved for your organisation. Its users can sign in now; you can close this page.",
        )
    } else {
        (
            "App not approved",
            "The app was not approved. Open the admin-consent link again to approve it, or close this page.",
        )
    };
    Html(format!("<!doctype html><title>{title}</title><h1>{title}</h1><p>{text}</p>")).into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    value: String,
    /// Required when the sign-in was started with a client-held PKCE verifier.
    code_verifier: Option<String>,
}

/// The user the new session belongs to; the session itself is in the headers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenExchanged {
    user_id: Uuid,
}

/// `POST /token`: trades a one-time token for a session. Failed exchanges are rate limited per client; a valid
/// token never is (see [`gatehouse_app::token_exchange::TokenExchange`]).
#[utoipa::path(post, path = "/token", tag = "third party", request_body = TokenBody,
    responses((status = 200, body = TokenExchanged, description = "the session is in `X-Auth-Token` or the cookie"),
        (status = 400, body = ErrorBody, description = "malformed body, or `code_verifier` does not match"),
        (status = 404, body = ErrorBody, description = "unknown or spent token"),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody, description = "expired token or wrong fields"),
        (status = 429, body = ErrorBody)))]
pub async fn token(
    State(state): State<AppState>,
    Meta(meta): Meta,
    AppJson(body): AppJson<TokenBody>,
) -> Result<Response, ApiError> {
    let exchange = state.token_exchange();
    let refused = match exchange.for_session(&body.value, body.code_verifier.as_deref(), &meta).await {
        Ok(Exchanged { user, issued, .. }) => {
            let delivery = cookies::session_delivery(&state.config().session, &issued);
            return Ok((delivery, Json(TokenExchanged { user_id: user.id.into() })).into_response());
        }
        Err(refused) => refused,
    };
    let error = match refused.error {
        ExchangeError::NotFound => ApiError::new(StatusCode::NOT_FOUND, refused.error.to_string()),
        ExchangeError::Expired => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, refused.error.to_string()),
        ExchangeError::VerifierMismatch | ExchangeError::OtherUser => {
            ApiError::new(StatusCode::BAD_REQUEST, refused.error.to_string())
        }
        ExchangeError::RateLimited(_) => ApiError::status(StatusCode::TOO_MANY_REQUESTS),
        ExchangeError::Store(error) => error.into(),
        ExchangeError::Session(error) => error.into(),
    };
    let mut response = error.into_response();
    if let Some(decision) = refused.limit {
        response.headers_mut().extend(rate_limit_headers(decision));
    }
    Ok(response)
}

/// `X-RateLimit-*` for a counted failure, and `Retry-After` once the client is over its limit.
fn rate_limit_headers(decision: RateDecision) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_secs));
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.reset_secs));
    }
    headers
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
