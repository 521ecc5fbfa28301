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
