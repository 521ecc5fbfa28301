//! Nothing secret reaches the logs: a whole sign-in is logged at debug level and the output is searched for the
//! client secret, the authorization code, the state, the one-time token and any JWT.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use tracing_subscriber::fmt::MakeWriter;

/// Every log line of this test binary, from the moment [`captured`] is first called.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the capturing subscriber once and returns the buffer.
pub fn captured() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_writer(capture.clone())
                .with_ansi(false)
                .try_init()
                .expect("the capturing subscriber is the only one in this test binary");
            capture
        })
        .0
        .clone()
}

/// Log text written so far.
pub fn text() -> String {
    String::from_utf8_lossy(&captured().lock().unwrap()).into_owned()
}

/// One info line per request: method, path, status and duration, never the query, a cookie or a bearer token.
/// Health probes and `/metrics` only at debug, so that orchestrators do not flood the log.
async fn each_request_is_one_info_line(backend: gatehouse_testkit::Backend) {
    captured();
    let server = gatehouse_testkit::TestServer::start(backend, |_| {}).await;
    let marker = uuid::Uuid::new_v4();
    let secret = format!("SECRET-{marker}");
    let response = server
        .client
        .get(server.url(&format!("/nothing-{marker}?code={secret}")))
        .bearer_auth(&secret)
        .header("cookie", format!("hanko={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    for probe in ["/health/alive", "/health/ready"] {
        assert_eq!(server.client.get(server.url(probe)).send().await.unwrap().status(), 200);
    }

    let log = text();
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(&format!("/nothing-{marker}"))).collect();
    let request_lines: Vec<&&str> = lines.iter().filter(|line| line.contains(" INFO ")).collect();
    assert_eq!(request_lines.len(), 1, "one info line: {lines:?}");
    for part in ["method=GET", "status=404", "duration_ms="] {
        assert!(request_lines[0].contains(part), "{part} in {}", request_lines[0]);
    }
    assert!(!log.contains(&secret), "neither the query, the bearer token nor the cookie is logged");
    let probes: Vec<&str> = log.lines().filter(|line| line.contains("path=\"/health/")).collect();
    assert!(!probes.is_empty() && probes.iter().all(|line| line.contains("DEBUG")), "probes at debug: {probes:?}");
}

gatehouse_testkit::both_backends!(each_request_is_one_info_line);
