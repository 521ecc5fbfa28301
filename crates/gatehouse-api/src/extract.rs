//! Request extractors that turn bad input into [`ApiError`]s instead of axum's plain-text rejections.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderMap, header, request::Parts},
};
use serde::de::DeserializeOwned;

use gatehouse_app::{RequestMeta, sessions::Authenticated};

use crate::{ApiError, AppState, client_address::ClientAddress, cookies::request_cookie};

/// What a request with another content type than JSON is told.
pub const EXPECTED_JSON: &str = "expected Content-Type: application/json";

/// `axum::Json`, but malformed JSON, a wrong content type or an oversized body answer in Hanko's error shape.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => EXPECTED_JSON.to_owned(),
        JsonRejection::JsonSyntaxError(_) => "the request body is not valid JSON".to_owned(),
        JsonRejection::JsonDataError(error) => format!("invalid request body: {}", error.body_text()),
        _ => rejection.body_text(),
    };
    ApiError::new(rejection.status(), message)
}

/// `axum::extract::Query`, but a bad parameter answers 400 in Hanko's shape, saying which and why.
#[derive(Debug)]
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
    }
}

/// `axum::extract::Path`, with the same kind of answer for a malformed id.
#[derive(Debug)]
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
    }
}

/// The session token a request carries: `Authorization: Bearer` first, then the session cookie (Hanko's order).
pub fn session_token<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    bearer_token(headers).or_else(|| request_cookie(headers, cookie_name))
}

/// The non-empty credential of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// A request with a valid session; answers 401 otherwise (503 when the database cannot say).
#[derive(Debug)]
pub struct SignedIn(pub Authenticated);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token =
            session_token(&parts.headers, &state.config().session.cookie.name).ok_or_else(ApiError::unauthorized)?;
        state.sessions().authenticate(token).await?.map(Self).ok_or_else(ApiError::unauthorized)
    }
}

/// Where the request came from. The source IP is the [`ClientAddress`] on the public listener (proxy headers
/// count only through `server.public.trusted_proxies`), the peer address elsewhere.
#[derive(Debug)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header_text =
            |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.chars().take(512).collect());
        Ok(Self(RequestMeta {
            request_id: header_text("x-request-id"),
            source_ip: parts
                .extensions
                .get::<ClientAddress>()
                .map(|client| client.0)
                .or_else(|| {
                    let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
                    peer.map(|info| info.0.ip().to_canonical())
                })
                .map(|address| address.to_string()),
            user_agent: header_text("user-agent"),
        }))
    }
}
