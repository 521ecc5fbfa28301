use std::sync::{Arc, RwLock};

use gatehouse_core::{config::Config, settings::ProviderSettings};
use gatehouse_crypto::sealing::Sealer;
use gatehouse_store::Store;

use crate::services::{
    admin_keys::ConfiguredKeys,
    audit::{AnonymousFailures, AuditLog},
    keys::{KeyRing, KeyRingError},
    rate_limit::{RateDecision, RateLimiter},
    session::SessionService,
    settings::{self, SettingsError},
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
    #[error(transparent)]
    Settings(#[from] SettingsError),
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
    sealer: Arc<Sealer>,
    keys: KeyRing,
    /// The third-party machinery of the settings in force, replaced whole when saved settings change.
    live: RwLock<Live>,
    token_limiter: Option<RateLimiter>,
    admin_keys: ConfiguredKeys,
    anonymous_failures: AnonymousFailures,
}

#[derive(Debug)]
struct Live {
    version: i64,
    third_party: Arc<ThirdParty>,
}

impl AppState {
    /// Prepares the state: derives the sealing keys, makes sure a session signing key exists, and applies the
    /// identity-provider settings saved in the database over the configuration file's.
    pub async fn new(config: Arc<Config>, store: Store) -> Result<Self, StateError> {
        let sealer = Arc::new(Sealer::new(&config.all_secret_keys().iter().map(|k| k.expose()).collect::<Vec<_>>())?);
        let keys = KeyRing::new(store.clone(), sealer.clone(), &config.session);
        keys.ensure_signing_key().await?;
        let saved = settings::load(&store, &sealer).await?;
        let third_party = Arc::new(build_third_party(&config, &saved.settings, &sealer)?);
        let limits = &config.rate_limiter;
        let token_limiter = limits
            .enabled
            .then(|| RateLimiter::new(limits.token_limits.tokens, limits.token_limits.interval.as_duration()));
        let admin_keys = ConfiguredKeys::new(&config.server.admin.api_keys);
        let live = RwLock::new(Live { version: saved.version, third_party });
        let anonymous_failures =
            AnonymousFailures::new(AnonymousFailures::WINDOW_MS, AnonymousFailures::ROWS_PER_WINDOW);
        Ok(Self {
            inner: Arc::new(Inner { config, store, sealer, keys, live, token_limiter, admin_keys, anonymous_failures }),
        })
    }

    /// The third-party machinery in force now. Callers keep the `Arc` for one request, so a change of settings
    /// never switches configurations in the middle of one.
    pub fn third_party(&self) -> Arc<ThirdParty> {
        self.inner.live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).third_party.clone()
    }

    /// The version of the saved settings in force (0: none saved).
    pub fn settings_version(&self) -> i64 {
        self.inner.live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).version
    }

    /// Applies saved settings if they are newer than those in force. `true` when something changed.
    pub async fn refresh_settings(&self) -> Result<bool, StateError> {
        let version = self.store().settings_version(settings::IDENTITY_PROVIDERS).await.map_err(SettingsError::from)?;
        if version == self.settings_version() {
            return Ok(false);
        }
        let saved = settings::load(self.store(), self.sealer()).await?;
        let prepared = self.prepare_settings(&saved.settings)?;
        self.install_settings(saved.version, prepared);
        Ok(true)
    }

    /// Builds what `settings` put in force (every client built, certificates read), without doing so yet: an
    /// error here means they cannot be used.
    pub fn prepare_settings(&self, settings: &ProviderSettings) -> Result<PreparedSettings, StateError> {
        build_third_party(self.config(), settings, self.sealer())
            .map(|third_party| PreparedSettings(Arc::new(third_party)))
    }

    /// Puts prepared settings in force as `version` (unless newer ones already are).
    pub fn install_settings(&self, version: i64, prepared: PreparedSettings) {
        let mut live = self.inner.live.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if version >= live.version {
            *live = Live { version, third_party: prepared.0 };
            tracing::info!(version, "identity-provider settings applied");
        }
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

    pub fn sealer(&self) -> &Arc<Sealer> {
        &self.inner.sealer
    }

    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn admin_keys(&self) -> &ConfiguredKeys {
        &self.inner.admin_keys
    }

    pub fn sessions(&self) -> SessionService<'_> {
        SessionService::new(self)
    }

    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog::new(self.store(), &self.inner.anonymous_failures)
    }
}

/// Settings checked and built by [`AppState::prepare_settings`], ready to be put in force.
#[derive(Debug)]
pub struct PreparedSettings(Arc<ThirdParty>);

/// The third-party machinery for the file's configuration with `saved` laid over it.
fn build_third_party(
    config: &Config,
    saved: &ProviderSettings,
    sealer: &Arc<Sealer>,
) -> Result<ThirdParty, StateError> {
    let mut effective = config.clone();
    effective.third_party = saved.apply(&config.third_party);
    ThirdParty::new(&effective, sealer.clone()).map_err(StateError::ThirdParty)
}
