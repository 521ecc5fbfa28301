//! The defence against cross-site request forgery, for every state-changing route of the public API.
//!
//! Any site can make a visitor's browser POST here: a `<form>` needs no permission, carries the visitor's cookies
//! and lets the answer set cookies (SameSite does not stop a cookie being *set* by a top-level navigation). A
//! `text/plain` form can even carry a JSON body, which is how a login CSRF would finish the attacker's own sign-in in
//! the visitor's browser. What a site cannot do is send `Content-Type: application/json` to another origin without a
//! CORS preflight, nor choose the `Origin` and `Sec-Fetch-Site` headers. So a write must be JSON (or have no body)
//! and come from this server's own origin or an origin in `server.public.cors.allow_origins`. Clients that send
//! neither header (curl, an app's backend) are not browsers acting for a visitor, so they pass.

use std::sync::Arc;

use axum::{
    body::HttpBody,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use gatehouse_core::{first_seen::FirstSeen, origin::AllowedOrigins};

use crate::{ApiError, extract::EXPECTED_JSON};

/// The origins that may write, and the refused ones already logged.
#[derive(Debug)]
pub struct WriteGuard {
    allowed_origins: AllowedOrigins,
    refused_origins: Arc<FirstSeen>,
}

/// Why a write was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// From a page of another origin; `None` when the browser named no origin.
    ForeignOrigin(Option<String>),
    NotJson,
}

impl WriteGuard {
    /// `refused_origins` is shared with CORS, so that each refused origin is logged once, whichever refused it.
    pub fn new(allowed_origins: &[String], refused_origins: Arc<FirstSeen>) -> Self {
        Self { allowed_origins: AllowedOrigins::new(allowed_origins), refused_origins }
    }

    fn check(&self, method: &Method, headers: &HeaderMap, has_body: bool) -> Result<(), Refusal> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        self.check_origin(headers)?;
        check_content_type(headers, has_body)
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let fetch_site = header_text(headers, "sec-fetch-site");
        // The browser's own word: this origin's page sent it, or no page did (an address typed, a bookmark).
        // `same-site` is not enough: on a shared parent domain, every sibling subdomain is the same site.
        if matches!(fetch_site, Some("same-origin" | "none")) {
            return Ok(());
        }
        match header_text(headers, header::ORIGIN.as_str()) {
            Some(origin) if self.allowed_origins.allows(origin) || is_own_origin(origin, headers) => Ok(()),
            Some(origin) => Err(Refusal::ForeignOrigin(Some(origin.to_owned()))),
            None if fetch_site.is_some() => Err(Refusal::ForeignOrigin(None)),
            None => Ok(()),
        }
    }
}

/// The middleware: refuses forged writes with 403 (foreign origin) or 415 (not JSON) in Hanko's error shape.
pub async fn refuse_forged_writes(State(guard): State<Arc<WriteGuard>>, request: Request, next: Next) -> Response {
    let has_body = request.body().size_hint().exact() != Some(0);
    match guard.check(request.method(), request.headers(), has_body) {
        Ok(()) => next.run(request).await,
        Err(Refusal::ForeignOrigin(origin)) => {
            if let Some(origin) = &origin {
                warn_refused_origin(&guard.refused_origins, origin);
            }
            ApiError::new(StatusCode::FORBIDDEN, "requests from this origin are not allowed").into_response()
        }
        Err(Refusal::NotJson) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, EXPECTED_JSON).into_response(),
    }
}

/// A warning naming a refused origin and the setting that would let it in, once per origin. Without it a page missing
/// from the allow-list fails in the browser only ("A technical error has occurred" in Hanko's elements), and the
/// server would say nothing.
pub fn warn_refused_origin(refused_origins: &FirstSeen, origin: &str) {
    if refused_origins.is_new(origin) {
        tracing::warn!(
            origin = ?origin.chars().take(200).collect::<String>(),
            "refused a request from a page of another origin (CORS, or a state-changing request); if that origin is \
             your app, add it to server.public.cors.allow_origins"
        );
    }
}

/// `application/json`, with or without parameters such as `charset`; no content type only without a body.
fn check_content_type(headers: &HeaderMap, has_body: bool) -> Result<(), Refusal> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim());
    match media_type {
        Some(media_type) if media_type.eq_ignore_ascii_case("application/json") => Ok(()),
        None if !has_body => Ok(()),
        _ => Err(Refusal::NotJson),
    }
}

/// Whether `origin` is the one this request was addressed to (its `Host`), whatever the scheme: behind a
/// TLS-terminating proxy the server cannot tell which scheme the browser used.
pub fn is_own_origin(origin: &str, headers: &HeaderMap) -> bool {
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    authority
        .zip(header_text(headers, header::HOST.as_str()))
        .is_some_and(|(origin, host)| origin.eq_ignore_ascii_case(host))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const APP: &str = "https://app.example.com";

    fn check(method: Method, pairs: &[(&'static str, &'static str)], has_body: bool) -> Result<(), Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("auth.example.com"));
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        WriteGuard::new(&[APP.to_owned()], Arc::default()).check(&method, &headers, has_body)
    }

    fn post(pairs: &[(&'static str, &'static str)]) -> Result<(), Refusal> {
        check(Method::POST, pairs, true)
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn browsers_write_from_this_origin_or_an_allowed_one() {
        assert_eq!(post(&[JSON, ("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(post(&[JSON, ("sec-fetch-site", "none")]), Ok(()));
        assert_eq!(post(&[JSON, ("origin", "https://auth.example.com")]), Ok(()), "own origin, older browser");
        assert_eq!(post(&[JSON, ("origin", APP), ("sec-fetch-site", "cross-site")]), Ok(()));
        assert_eq!(post(&[JSON]), Ok(()), "not a browser");
    }

    #[test]
    fn other_sites_and_sibling_subdomains_are_refused() {
        let foreign = |origin: &str| Err(Refusal::ForeignOrigin(Some(origin.to_owned())));
        let evil = "https://evil.example.net";
        assert_eq!(post(&[JSON, ("origin", evil), ("sec-fetch-site", "cross-site")]), foreign(evil));
        assert_eq!(post(&[JSON, ("origin", evil)]), foreign(evil), "older browser");
        let sibling = "https://blog.example.com";
        assert_eq!(post(&[JSON, ("origin", sibling), ("sec-fetch-site", "same-site")]), foreign(sibling));
        assert_eq!(post(&[JSON, ("origin", "null"), ("sec-fetch-site", "cross-site")]), foreign("null"));
        assert_eq!(post(&[JSON, ("sec-fetch-site", "cross-site")]), Err(Refusal::ForeignOrigin(None)));
        assert_eq!(check(Method::GET, &[("origin", evil)], false), Ok(()), "reads are not guarded");
    }

    #[test]
    fn writes_are_json_or_bodiless() {
        assert_eq!(post(&[("content-type", "application/json; charset=utf-8")]), Ok(()));
        assert_eq!(post(&[("content-type", "Application/JSON")]), Ok(()));
        assert_eq!(post(&[("content-type", "text/plain")]), Err(Refusal::NotJson));
        assert_eq!(post(&[("content-type", "application/x-www-form-urlencoded")]), Err(Refusal::NotJson));
        assert_eq!(post(&[("content-type", "application/json-seq")]), Err(Refusal::NotJson));
        assert_eq!(post(&[]), Err(Refusal::NotJson), "a body without a content type");
        assert_eq!(check(Method::POST, &[], false), Ok(()), "no body, no content type: curl -X POST");
        assert_eq!(check(Method::POST, &[("content-type", "text/plain")], false), Err(Refusal::NotJson));
    }
}
