use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_crypto::sealing::Sealer;
use gatehouse_store::Store;

use crate::services::{
    audit::AuditLog,
    keys::{KeyRing, KeyRingError},
    rate_limit::{RateDecision, RateLimiter},
    session::SessionService,
    thirdparty::ThirdParty,
};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    #[error("secret_keys: {0}")]
    Sealing(#[from] gatehouse_crypto::sealing::SealError),
    #[error("third_party: {0}")]
    ThirdParty(String),
}

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
    third_party: ThirdParty,
    token_limiter: Option<RateLimiter>,
}

impl AppState {
    /// Prepares the state: derives the sealing keys and makes sure a session signing key exists.
    pub async fn new(config: Arc<Config>, store: Store) -> Result<Self, StateError> {
        let sealer = Arc::new(Sealer::new(&config.all_secret_keys().iter().map(|k| k.expose()).collect::<Vec<_>>())?);
        let keys = KeyRing::new(store.clone(), sealer.clone(), &config.session);
        keys.ensure_signing_key().await?;
        let third_party = ThirdParty::new(&config, sealer).map_err(StateError::ThirdParty)?;
        let limits = &config.rate_limiter;
        let token_limiter = limits
            .enabled
            .then(|| RateLimiter::new(limits.token_limits.tokens, limits.token_limits.interval.as_duration()));
        Ok(Self { inner: Arc::new(Inner { config, store, keys, third_party, token_limiter }) })
    }

    pub fn third_party(&self) -> &ThirdParty {
        &self.inner.third_party
    }

    /// Counts one token exchange for `client`; `None` when rate limiting is off.
    pub fn token_rate_limit(&self, client: &str) -> Option<RateDecision> {
        self.inner.token_limiter.as_ref().map(|limiter| limiter.check(client))
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
