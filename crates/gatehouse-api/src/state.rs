use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_crypto::sealing::Sealer;
use gatehouse_store::Store;

use crate::services::{audit::AuditLog, keys::KeyRing, session::SessionService};

/// Everything a handler may reach. Cheap to clone; there is no global state anywhere else.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    store: Store,
    keys: KeyRing,
}

impl AppState {
    /// Prepares the state: derives the sealing keys and makes sure a session signing key exists.
    pub async fn new(config: Arc<Config>, store: Store) -> Result<Self, crate::services::keys::KeyRingError> {
        let sealer = Arc::new(Sealer::new(&config.all_secret_keys().iter().map(|k| k.expose()).collect::<Vec<_>>())?);
        let keys = KeyRing::new(store.clone(), sealer, &config.session);
        keys.ensure_signing_key().await?;
        Ok(Self { inner: Arc::new(Inner { config, store, keys }) })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn sessions(&self) -> SessionService<'_> {
        SessionService::new(self)
    }

    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog::new(self.store())
    }
}
