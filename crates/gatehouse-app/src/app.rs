//! [`App`]: the application as one value. Cheap to clone; there is no global state anywhere else.

use std::sync::{Arc, RwLock};

use gatehouse_core::{
    clock::Clock, config::Config, jwt_template::ClaimsPlan, rate_limit::RateDecision, settings::ProviderSettings,
};
use gatehouse_crypto::sealing::Sealer;
use gatehouse_store::{Store, StoreError};

use crate::{
    admin_keys::{AdminKeys, ConfiguredKeys},
    audit::{AnonymousFailures, AuditLog, RequestMeta},
    flows::Flows,
    identity_providers::IdentityProviders,
    keys::{KeyRing, KeyRingError},
    rate_limit::RateLimiter,
    sessions::Sessions,
    settings::{self, SettingsError},
    thirdparty::{CallbackParams, Finished, StartError, StartRequest, Started, ThirdParty, ThirdPartyError},
    token_exchange::TokenExchange,
    users::Users,
};

/// Why the application cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    #[error("secret_keys: {0}")]
    Sealing(#[from] gatehouse_crypto::sealing::SealError),
    #[error("third_party: {0}")]
    ThirdParty(#[from] ThirdPartyError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("rate_limiter.redis_config: {0}")]
    RateLimiter(String),
    #[error("{0}")]
    Claims(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    store: Store,
    sealer: Arc<Sealer>,
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    /// What sessions carry besides Hanko's claims: the operator's custom claims and template, and the size cap.
    claims_plan: Arc<ClaimsPlan>,
    /// The third-party machinery of the settings in force, replaced whole when saved settings change.
    live: RwLock<Live>,
    /// Count per client: failed token exchanges, new flows, callbacks carrying a code; `None` when rate limiting
    /// is off.
    token_limiter: Option<RateLimiter>,
    flow_limiter: Option<RateLimiter>,
    callback_limiter: Option<RateLimiter>,
    admin_keys: ConfiguredKeys,
    anonymous_failures: AnonymousFailures,
}

#[derive(Debug)]
struct Live {
    version: i64,
    third_party: Arc<ThirdParty>,
}

impl App {
    /// Prepares the application: derives the sealing keys, makes sure a session signing key exists, and applies
    /// the identity-provider settings saved in the database over the configuration file's. Everything time-based
    /// reads `clock`.
    pub async fn new(config: Arc<Config>, store: Store, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let sealer = Arc::new(Sealer::new(&config.all_secret_keys().iter().map(|k| k.expose()).collect::<Vec<_>>())?);
        let keys = KeyRing::new(store.clone(), sealer.clone(), &config.session, clock.clone());
        keys.ensure_signing_key().await?;
        let saved = settings::load(&store, &sealer).await?;
        let claims_plan = Arc::new(config.session.claims_plan().map_err(|issues| {
            AppError::Claims(issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?);
        let third_party = Arc::new(build_third_party(&config, &claims_plan, &saved.settings, &sealer, &clock)?);
        let limits = &config.rate_limiter;
        let limiter = |rule: &gatehouse_core::config::RateLimit| {
            limits
                .enabled
                .then(|| RateLimiter::new(rule.fixed_window(), limits.store, &limits.redis_config, clock.clone()))
                .transpose()
                .map_err(AppError::RateLimiter)
        };
        let token_limiter = limiter(&limits.token_limits)?;
        let flow_limiter = limiter(&limits.flow_limits)?;
        let callback_limiter = limiter(&limits.callback_limits)?;
        let admin_keys = ConfiguredKeys::new(&config.server.admin.api_keys);
        let live = RwLock::new(Live { version: saved.version, third_party });
        let anonymous_failures = AnonymousFailures::new(AnonymousFailures::WINDOW, AnonymousFailures::ROWS_PER_WINDOW);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                sealer,
                clock,
                keys,
                claims_plan,
                live,
                token_limiter,
                flow_limiter,
                callback_limiter,
                admin_keys,
                anonymous_failures,
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
    pub async fn refresh_settings(&self) -> Result<bool, AppError> {
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
    pub fn prepare_settings(&self, settings: &ProviderSettings) -> Result<PreparedSettings, ThirdPartyError> {
        build_third_party(self.config(), &self.inner.claims_plan, settings, self.sealer(), self.clock())
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

    /// Starts a sign-in with a provider, with the settings in force.
    pub fn start_sign_in(&self, request: StartRequest<'_>) -> Result<Started, StartError> {
        self.third_party().start(request)
    }

    /// Finishes a sign-in at the provider's callback. A callback carrying a code counts against
    /// `rate_limiter.callback_limits` (only those cost a request to the provider); over it, the code is not
    /// redeemed.
    pub async fn finish_sign_in(
        &self,
        params: CallbackParams,
        browser_binding: Option<&str>,
        meta: &RequestMeta,
    ) -> Finished {
        let over_limit = params.code.is_some() && !self.admit_callback(meta).await;
        self.third_party().finish(self, over_limit, params, browser_binding, meta).await
    }

    /// Counts a failed token exchange against the client's limit. The decision says whether the client is now
    /// over it; `None` when nothing was counted (rate limiting off, or its Redis unreachable).
    pub(crate) async fn count_failed_exchange(&self, meta: &RequestMeta) -> Option<RateDecision> {
        let client = meta.source_ip.as_deref().unwrap_or("unknown");
        self.inner.token_limiter.as_ref()?.count(&format!("token_exchange/{client}")).await
    }

    /// Counts a new flow for the client: `false` when it is over `rate_limiter.flow_limits`.
    pub async fn admit_new_flow(&self, meta: &RequestMeta) -> bool {
        Self::admit(self.inner.flow_limiter.as_ref(), "flow_start", meta).await
    }

    async fn admit_callback(&self, meta: &RequestMeta) -> bool {
        Self::admit(self.inner.callback_limiter.as_ref(), "callback", meta).await
    }

    async fn admit(limiter: Option<&RateLimiter>, kind: &str, meta: &RequestMeta) -> bool {
        let Some(limiter) = limiter else { return true };
        let client = meta.source_ip.as_deref().unwrap_or("unknown");
        limiter.count(&format!("{kind}/{client}")).await.is_none_or(|decision| decision.allowed)
    }

    /// Whether the database answers: what readiness means.
    pub async fn database_ready(&self) -> Result<(), StoreError> {
        self.store().ping().await
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn claims_plan(&self) -> &ClaimsPlan {
        &self.inner.claims_plan
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn sealer(&self) -> &Arc<Sealer> {
        &self.inner.sealer
    }

    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn admin_keys(&self) -> AdminKeys<'_> {
        AdminKeys::new(self, &self.inner.admin_keys)
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(self)
    }

    pub fn token_exchange(&self) -> TokenExchange<'_> {
        TokenExchange::new(self)
    }

    pub fn users(&self) -> Users<'_> {
        Users::new(self)
    }

    pub fn flows(&self) -> Flows<'_> {
        Flows::new(self)
    }

    pub fn identity_providers(&self) -> IdentityProviders<'_> {
        IdentityProviders::new(self)
    }

    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog::new(self.store(), &self.inner.anonymous_failures, self.clock().as_ref())
    }
}

/// Settings checked and built by [`App::prepare_settings`], ready to be put in force.
#[derive(Debug)]
pub struct PreparedSettings(Arc<ThirdParty>);

/// The third-party machinery for the file's configuration with `saved` laid over it.
fn build_third_party(
    config: &Config,
    claims_plan: &Arc<ClaimsPlan>,
    saved: &ProviderSettings,
    sealer: &Arc<Sealer>,
    clock: &Arc<dyn Clock>,
) -> Result<ThirdParty, ThirdPartyError> {
    let mut effective = config.clone();
    effective.third_party = saved.apply(&config.third_party);
    ThirdParty::new(&effective, claims_plan.clone(), sealer.clone(), clock.clone())
}
