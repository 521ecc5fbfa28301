//! Gatehouse's own login page at `/`: plain HTML, CSS and JavaScript from this repository, compiled into the
//! binary, driven by the flow API. Strict CSP: nothing but this origin's own files.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A file compiled into the binary, served with its content security policy.
pub fn asset(csp: &'static str, content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// Gatehouse's login page.
#[utoipa::path(get, path = "/", tag = "login page", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn page() -> Response {
    asset(CSP, "text/html; charset=utf-8", include_str!("../../assets/login.html"))
}

pub async fn script() -> Response {
    asset(CSP, "text/javascript; charset=utf-8", include_str!("../../assets/login.js"))
}

pub async fn stylesheet() -> Response {
    asset(CSP, "text/css; charset=utf-8", include_str!("../../assets/login.css"))
}
