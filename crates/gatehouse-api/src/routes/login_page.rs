//! Gatehouse's own login page at `/`: plain HTML, CSS and JavaScript from this repository, compiled into the
//! binary, driven by the flow API. Strict CSP: nothing but this origin's own files.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

pub async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("../../assets/login.html"))
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/login.js"))
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../assets/login.css"))
}
