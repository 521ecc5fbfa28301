use std::sync::{
    Arc, RwLock,
    atomic::{AtomicBool, Ordering},
};

use gatehouse_core::{
    client_address::{NetworkError, TrustedProxies},
    config::Config,
    rate_limit::RateDecision,
    settings::ProviderSettings,
};
use gatehouse_crypto::sealing::Sealer;
use gatehouse_store::Store;

use crate::{
    clock::{Clock, SystemClock},
    services::{
        admin_keys::ConfiguredKeys,
        audit::{AnonymousFailures, AuditLog, RequestMeta},
        keys::{KeyRing, KeyRingError},
        rate_limit::RateLimiter,
        session::SessionService,
        settings::{self, SettingsError},
        thirdparty::ThirdParty,
    },
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
    #[error("server.public.trusted_proxies: {0}")]
    TrustedProxies(#[from] NetworkError),
    #[error("rate_limiter.redis_config: {0}")]
    RateLimiter(String),
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
    /// Count per client: failed token exchanges, new flows, callbacks carrying a code; `None` when rate limiting
    /// is off.
    token_limiter: Option<RateLimiter>,
    flow_limiter: Option<RateLimiter>,
    callback_limiter: Option<RateLimiter>,
    trusted_proxies: Arc<TrustedProxies>,
    admin_keys: ConfiguredKeys,
    anonymous_failures: AnonymousFailures,
    /// Set once shutdown has begun: readiness answers 503 from then on.
    draining: AtomicBool,
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
        Self::with_clock(config, store, Arc::new(SystemClock)).await
    }

    /// [`Self::new`], with the clock the rate limiter reads (tests move it instead of sleeping).
    pub async fn with_clock(config: Arc<Config>, store: Store, clock: Arc<dyn Clock>) -> Result<Self, StateError> {
        let sealer = Arc::new(Sealer::new(&config.all_secret_keys().iter().map(|k| k.expose()).collect::<Vec<_>>())?);
        let keys = KeyRing::new(store.clone(), sealer.clone(), &config.session);
        keys.ensure_signing_key().await?;
        let saved = settings::load(&store, &sealer).await?;
        let third_party = Arc::new(build_third_party(&config, &saved.settings, &sealer)?);
        let limits = &config.rate_limiter;
        let limiter = |rule: &gatehouse_core::config::RateLimit| {
            limits
                .enabled
                .then(|| RateLimiter::new(rule.fixed_window(), limits.store, &limits.redis_config, clock.clone()))
                .transpose()
                .map_err(StateError::RateLimiter)
        };
        let token_limiter = limiter(&limits.token_limits)?;
        let flow_limiter = limiter(&limits.flow_limits)?;
        let callback_limiter = limiter(&limits.callback_limits)?;
        let trusted_proxies = Arc::new(TrustedProxies::parse(&config.server.public.trusted_proxies)?);
        let admin_keys = ConfiguredKeys::new(&config.server.admin.api_keys);
        let live = RwLock::new(Live { version: saved.version, third_party });
        let anonymous_failures =
            AnonymousFailures::new(AnonymousFailures::WINDOW_MS, AnonymousFailures::ROWS_PER_WINDOW);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                sealer,
                keys,
                live,
                token_limiter,
                flow_limiter,
                callback_limiter,
                trusted_proxies,
                admin_keys,
                anonymous_failures,
                draining: AtomicBool::new(false),
            }),
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

    /// Records a failed token exchange (unknown or expired token, wrong verifier): its audit row, and one count
    /// against the client's limit. The decision says whether the client is now over it; `None` when nothing was
    /// counted (rate limiting off, or its Redis unreachable).
    ///
    /// Only failures are counted, and only after the token was looked up, so a valid token is never refused:
    /// junk, from another client or from the same address (a shared NAT, a misconfigured proxy), cannot stop a
    /// sign-in. Successes are not capped at all: each consumes a single-use token that only a completed sign-in
    /// at Microsoft mints, so they are bounded there, and a cap per address would bring back one bucket for
    /// everyone behind it. What the limit still does: tell a client that floods junk to back off (429 with
    /// `Retry-After`), in place of an answer per guess; the guesses themselves are hopeless (256-bit tokens).
    pub async fn failed_token_exchange(&self, meta: &RequestMeta, reason: &str) -> Option<RateDecision> {
        self.audit().record("token_exchange_failed", None, Some(reason), meta).await;
        let client = meta.source_ip.as_deref().unwrap_or("unknown");
        self.inner.token_limiter.as_ref()?.count(&format!("token_exchange/{client}")).await
    }

    /// Counts a new flow for the client: `false` when it is over `rate_limiter.flow_limits`.
    pub async fn admit_new_flow(&self, meta: &RequestMeta) -> bool {
        Self::admit(self.inner.flow_limiter.as_ref(), "flow_start", meta).await
    }

    /// Counts a provider callback carrying a code for the client: `false` when it is over
    /// `rate_limiter.callback_limits`, and the code must not be redeemed.
    pub async fn admit_callback(&self, meta: &RequestMeta) -> bool {
        Self::admit(self.inner.callback_limiter.as_ref(), "callback", meta).await
    }

    async fn admit(limiter: Option<&RateLimiter>, kind: &str, meta: &RequestMeta) -> bool {
        let Some(limiter) = limiter else { return true };
        let client = meta.source_ip.as_deref().unwrap_or("unknown");
        limiter.count(&format!("{kind}/{client}")).await.is_none_or(|decision| decision.allowed)
    }

    /// The proxies whose forwarding headers name the client on the public listener.
    pub fn trusted_proxies(&self) -> &Arc<TrustedProxies> {
        &self.inner.trusted_proxies
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Marks the instance as shutting down: `/health/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
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
