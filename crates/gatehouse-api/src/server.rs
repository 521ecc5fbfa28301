//! Binding and serving: `Application::build` binds the public listener and, when enabled, the admin listener
//! (port 0 in tests); `run_until_stopped` serves both until the shutdown future completes, then drains in-flight
//! requests. The application's background tasks (sweeps, saved settings followed, keys reloaded, expiring
//! credentials reported) run while it serves and stop with it.
//!
//! Both listeners are served by [`serve`], which defends against slow and idle clients (slowloris): headers must
//! arrive within `server.timeouts.read_header`, and each listener holds at most its connection cap open.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo, http::Request};
use gatehouse_app::{
    App,
    tasks::{BackgroundTasks, TaskIntervals},
};
use gatehouse_core::{
    clock::{Clock, SystemClock},
    config::Config,
};
use gatehouse_store::Store;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tower::ServiceExt;

use crate::{AppState, admin_app, app, state::StateError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Transparent: the state's error already says what could not be prepared, and repeating it as a prefix
    /// printed every cause twice.
    #[error(transparent)]
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

impl From<gatehouse_app::AppError> for StartError {
    fn from(error: gatehouse_app::AppError) -> Self {
        Self::State(error.into())
    }
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    state: AppState,
    intervals: TaskIntervals,
}

async fn bind(address: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(address).await.map_err(|source| StartError::Bind { address: address.to_owned(), source })
}

impl Application {
    /// Prepares the application (signing key, saved settings) and binds `server.public.address` and, unless the
    /// admin API is off, `server.admin.address`, which needs at least one admin key.
    pub async fn build(config: Arc<Config>, store: Store) -> Result<Self, StartError> {
        let intervals = TaskIntervals::for_config(&config);
        Self::build_with(config, store, Arc::new(SystemClock), intervals).await
    }

    /// [`Self::build`], with the clock everything time-based reads and the background tasks' intervals (tests
    /// move a manual clock and run the tasks often).
    pub async fn build_with(
        config: Arc<Config>,
        store: Store,
        clock: Arc<dyn Clock>,
        intervals: TaskIntervals,
    ) -> Result<Self, StartError> {
        let state = AppState::new(App::new(config.clone(), store, clock).await?)?;
        let admin = &config.server.admin;
        let admin_listener = if admin.enabled {
            if !state.admin_keys().any().await? {
                return Err(StartError::NoAdminKey);
            }
            Some(bind(&admin.address).await?)
        } else {
            None
        };
        let listener = bind(&config.server.public.address).await?;
        Ok(Self { listener, admin_listener, state, intervals })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The admin listener's address, when the admin API is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().map(|listener| listener.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop, stopped) = watch::channel(());
        let config = self.state.config();
        let limits = ConnectionLimits {
            read_header: config.server.timeouts.read_header.as_duration(),
            max_connections: config.max_connections_per_listener(open_files_limit()),
        };
        let tasks = BackgroundTasks::start(self.state.app(), self.intervals);
        let admin = async {
            if let Some(listener) = self.admin_listener {
                let bound = listener.local_addr().expect("a bound listener has an address");
                serve(listener, admin_app(self.state.clone(), bound), limits, stopped.clone()).await;
            }
        };
        let public = serve(self.listener, app(self.state.clone()), limits, stopped.clone());
        let (state, drain) = (self.state.clone(), config.server.timeouts.drain.as_duration());
        let trigger = async move {
            shutdown.await;
            // Readiness fails first, while requests are still served, so that load balancers stop sending any.
            state.start_draining();
            tracing::info!(?drain, "shutting down: not ready, still serving");
            tokio::time::sleep(drain).await;
            let _ = stop.send(());
        };
        tokio::join!(public, admin, trigger);
        tasks.stop().await;
    }
}

/// How one listener treats its connections.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    read_header: Duration,
    max_connections: u32,
}

/// How long to wait after a failed `accept` (out of file descriptors, say): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `stopped` changes, then lets the open connections finish their requests.
/// A connection over the cap is closed as soon as it is accepted, so the listener keeps accepting (and answering
/// again once connections end) instead of running the process out of file descriptors.
async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits, mut stopped: watch::Receiver<()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.read_header);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    _ = stopped.changed() => break,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Debug only: under a flood this happens thousands of times a second.
            tracing::debug!(%peer, "connection closed: the listener is at server.max_connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Handlers read the peer address as axum's `ConnectInfo`, as with `into_make_service_with_connect_info`.
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    // Each connection holds a slot until it ends: all slots back means every request in flight has finished.
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// The process's open-file limit (raised to its maximum by the binary at start).
#[cfg(unix)]
fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Without a limit to read, the conventional one.
#[cfg(not(unix))]
fn open_files_limit() -> u64 {
    1024
}
