//! Binding and serving: `Application::build` binds the public listener and, when enabled, the admin listener
//! (port 0 in tests); `run_until_stopped` serves both until the shutdown future completes, then drains in-flight
//! requests. Saved identity-provider settings are followed while it runs.

use std::{
    future::{Future, IntoFuture},
    net::SocketAddr,
    sync::Arc,
};

use gatehouse_core::config::Config;
use gatehouse_store::Store;
use tokio::net::TcpListener;

use crate::{
    AppState, admin_app, app,
    clock::{Clock, SystemClock},
    services::settings,
    state::StateError,
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare the server: {0}")]
    State(#[from] StateError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error(
        "the admin API has no key: create one with `gatehouse admin-key new --name <name>` or set \
         server.admin.api_keys (or turn the admin API off with server.admin.enabled: false)"
    )]
    NoAdminKey,
    #[error("cannot read the admin keys: {0}")]
    AdminKeys(#[from] gatehouse_store::StoreError),
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    state: AppState,
}

async fn bind(address: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(address).await.map_err(|source| StartError::Bind { address: address.to_owned(), source })
}

impl Application {
    /// Prepares the state (signing key, saved settings) and binds `server.public.address` and, unless the admin
    /// API is off, `server.admin.address`, which needs at least one admin key.
    pub async fn build(config: Arc<Config>, store: Store) -> Result<Self, StartError> {
        Self::build_with_clock(config, store, Arc::new(SystemClock)).await
    }

    /// [`Self::build`], with the clock the rate limiter reads.
    pub async fn build_with_clock(
        config: Arc<Config>,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let state = AppState::with_clock(config.clone(), store, clock).await?;
        let admin = &config.server.admin;
        let admin_listener = if admin.enabled {
            if state.admin_keys().is_empty() && state.store().active_admin_keys().await?.is_empty() {
                return Err(StartError::NoAdminKey);
            }
            Some(bind(&admin.address).await?)
        } else {
            None
        };
        let listener = bind(&config.server.public.address).await?;
        Ok(Self { listener, admin_listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The admin listener's address, when the admin API is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().map(|listener| listener.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(());
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.changed().await;
            }
        };
        let interval = self.state.config().server.settings_poll_interval.as_duration();
        let follower = tokio::spawn(settings::follow(self.state.clone(), interval));
        let admin = async {
            match self.admin_listener {
                Some(listener) => {
                    let router = admin_app(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
                    axum::serve(listener, router).with_graceful_shutdown(until_stopped()).await
                }
                None => Ok(()),
            }
        };
        let router = app(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let public = axum::serve(self.listener, router).with_graceful_shutdown(until_stopped()).into_future();
        let trigger = async move {
            shutdown.await;
            let _ = stop.send(());
        };
        let (public, admin, ()) = tokio::join!(public, admin, trigger);
        follower.abort();
        public.and(admin)
    }
}
