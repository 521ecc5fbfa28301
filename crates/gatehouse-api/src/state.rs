//! What every handler reaches: the application, and what only the HTTP layer needs (which proxies may name the
//! client). Cheap to clone; there is no global state anywhere else.

use std::{ops::Deref, sync::Arc};

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
}

impl AppState {
    pub fn new(app: App) -> Result<Self, StateError> {
        let trusted_proxies = Arc::new(TrustedProxies::parse(&app.config().server.public.trusted_proxies)?);
        Ok(Self { inner: Arc::new(Inner { app, trusted_proxies, counters: Counters::default() }) })
    }

    pub fn app(&self) -> &App {
        &self.inner.app
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
