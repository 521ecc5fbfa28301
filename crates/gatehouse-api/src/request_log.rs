//! One line per request at info: what an operator reads to see that the server is used and how it answers, at the
//! default log level and without the SQL that debug brings.

use std::time::Instant;

use axum::{extract::Request, middleware::Next, response::Response};

/// Probed every few seconds by orchestrators and scrapers: logged at debug only, so they do not flood the log.
const PROBES: [&str; 3] = ["/health/alive", "/health/ready", "/metrics"];

/// Logs method, path, status, duration and request id once the response is ready. Never the query string (codes,
/// states and tokens travel there), nor headers (cookies, bearer tokens).
pub async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // Any client chooses the path; a bounded copy keeps a crafted one from bloating the log.
    let path: String = request.uri().path().chars().take(256).collect();
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    // A duration, not a point in time: measured with the monotonic clock, which the injected wall clock is not.
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if PROBES.contains(&path.as_str()) {
        tracing::debug!(%method, path, status, duration_ms, request_id, "request");
    } else {
        tracing::info!(%method, path, status, duration_ms, request_id, "request");
    }
    response
}
