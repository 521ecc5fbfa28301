//! What every handler reaches: the application, and what only the HTTP layer needs (which proxies may name the
//! client). Cheap to clone; there is no global state anywhere else.

use std::{
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use gatehouse_app::{App, AppError};
use gatehouse_core::client_address::{NetworkError, TrustedProxies};

use crate::metrics::Counters;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("server.public.trusted_proxies: {0}")]
    TrustedProxies(#[from] NetworkError),
}

#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: App,
    trusted_proxies: Arc<TrustedProxies>,
    counters: Counters,
    /// Set once shutdown has begun: readiness answers 503 from then on.
    draining: AtomicBool,
}

impl AppState {
    pub fn new(app: App) -> Result<Self, StateError> {
        let trusted_proxies = Arc::new(TrustedProxies::parse(&app.config().server.public.trusted_proxies)?);
        let draining = AtomicBool::new(false);
        Ok(Self { inner: Arc::new(Inner { app, trusted_proxies, counters: Counters::default(), draining }) })
    }

    pub fn app(&self) -> &App {
        &self.inner.app
    }

    /// Marks the instance as shutting down: `/health/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Responses and sign-ins counted for `/metrics`.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The proxies whose forwarding headers name the client on the public listener.
    pub fn trusted_proxies(&self) -> &Arc<TrustedProxies> {
        &self.inner.trusted_proxies
    }
}

/// Handlers call the application through the state: `state.sessions()`, `state.start_sign_in(…)`.
impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.inner.app
    }
}
