//! Binding and serving: `Application::build` binds (port 0 in tests), `run_until_stopped` serves until the
//! shutdown future completes, then drains in-flight requests.

use std::{future::Future, net::SocketAddr, sync::Arc};

use gatehouse_core::config::Config;
use gatehouse_store::Store;
use tokio::net::TcpListener;

use crate::{AppState, app, state::StateError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare the server: {0}")]
    State(#[from] StateError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Prepares the state (signing key included) and binds `server.public.address`.
    pub async fn build(config: Arc<Config>, store: Store) -> Result<Self, StartError> {
        let state = AppState::new(config.clone(), store).await?;
        let address = &config.server.public.address;
        let listener =
            TcpListener::bind(address).await.map_err(|source| StartError::Bind { address: address.clone(), source })?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let router = app(self.state);
        axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
    }
}
