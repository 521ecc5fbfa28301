//! Third-party sign-in, end to end: start (authorize URL and sealed state), callback (state, code, ID token,
//! account, one-time token), and where the browser goes next. Shared by the legacy endpoints and the flow API.

use std::sync::Arc;

use gatehouse_core::{
    clock::{Clock, Timestamp},
    config::Config,
    custom_claims::graph_attributes,
    email::EmailProof,
    error::ThirdPartyErrorCode,
    first_seen::FirstSeen,
    ids::{FlowId, StateId, TokenId, UserId},
    jwt_template::ClaimsPlan,
    linking::{LinkingInput, LinkingPolicy, decide},
    microsoft::{
        claims::{CONSUMERS_TENANT_ID, ProviderUser, TenantMode},
        consent::{AppRegistration, ConsentTenant, ConsentTenantError, needs_admin_consent},
        directory::{
            DirectoryFacts, GROUP_MEMBERSHIP_PERMISSION, GroupFilter, GroupsClaim, PROFILE_PERMISSION, Tenant,
        },
    },
    redirect::{RedirectAllowList, RedirectPattern},
};
use gatehouse_crypto::{random, sealing::Sealer};
use gatehouse_oidc::{
    graph::{AccessToken, GraphError},
    microsoft::{MicrosoftClient, MicrosoftError, MicrosoftSettings, UnusableCertificate},
    pkce,
    state::{StateError, ThirdPartyState},
};
use gatehouse_store::{
    AccountOutcome, AuditLogEntry, NewToken, ProviderAccount, ProviderEmailAddress, ProviderProfile, SignInRecords,
};
use url::Url;

use crate::{
    App,
    audit::{AuditLog, RequestMeta},
    sessions::SessionError,
};

pub const MICROSOFT: &str = "microsoft";
/// The cookie that binds a state to the browser that started the sign-in, when the client sent no verifier.
pub const STATE_COOKIE: &str = "hanko_thirdparty_state";
/// The query parameter that carries the one-time token back to the app (Hanko's name).
pub const TOKEN_QUERY: &str = "hanko_token";
/// One-time tokens live this long (Hanko: one minute).
pub const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// The `error` a failed sign-in reports: one of Hanko's codes, or the provider's own, passed through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureCode {
    Hanko(ThirdPartyErrorCode),
    /// The provider's `error`, reduced to `[A-Za-z0-9_]` and 64 characters.
    Provider(String),
}

impl FailureCode {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Hanko(code) => code.as_str(),
            Self::Provider(code) => code,
        }
    }
}

/// Why a configuration's third-party machinery cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ThirdPartyError {
    #[error(transparent)]
    Certificate(#[from] UnusableCertificate),
    #[error("cannot build the Microsoft client: {0}")]
    Client(#[from] MicrosoftError),
    #[error("{pattern:?}: {error}")]
    RedirectPattern { pattern: String, error: gatehouse_core::redirect::PatternError },
    #[error("third_party.providers.microsoft.groups.keep: {0}")]
    GroupPattern(#[from] gatehouse_core::microsoft::directory::InvalidGroupPattern),
}

/// A failure with Hanko's code and a description fit for the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThirdPartyFailure {
    pub code: FailureCode,
    pub description: String,
}

impl ThirdPartyFailure {
    pub fn new(code: ThirdPartyErrorCode, description: impl Into<String>) -> Self {
        let description = match code {
            ThirdPartyErrorCode::ServerError => "an internal error has occurred".to_owned(),
            _ => description.into(),
        };
        Self { code: FailureCode::Hanko(code), description }
    }

    /// A failure that the configuration or Microsoft's side causes and the user cannot fix: `server_error`, with a
    /// description that says what is wrong (it holds nothing internal).
    fn unavailable(description: impl Into<String>) -> Self {
        Self { code: FailureCode::Hanko(ThirdPartyErrorCode::ServerError), description: description.into() }
    }

    /// A provider's own `error`, passed through but reduced to harmless characters and length.
    fn from_provider(error: &str, description: Option<&str>) -> Self {
        let code: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        let description: String = description
            .unwrap_or("the provider reported an error")
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect();
        let code = if code.is_empty() {
            FailureCode::Hanko(ThirdPartyErrorCode::InvalidRequest)
        } else {
            FailureCode::Provider(code)
        };
        Self { code, description }
    }
}

/// The admin-consent URL for one tenant, and whose administrator must open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConsent {
    pub tenant: ConsentTenant,
    pub url: Url,
}

/// Why no admin-consent URL can be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminConsentError {
    #[error(
        "Microsoft is not configured: the admin-consent URL needs third_party.providers.microsoft.client_id and \
         third_party.redirect_url (in the configuration file or the console)"
    )]
    NotConfigured,
    #[error("tenant: {0}")]
    Tenant(#[from] ConsentTenantError),
}

/// Why a sign-in could not start; these are answered with a JSON 400, never with a redirect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartError {
    #[error("unknown or disabled provider: {0}")]
    Provider(String),
    #[error("redirect_to is not allowed: {0}")]
    RedirectNotAllowed(String),
    #[error("redirect_to is required (no default_redirect_url is configured)")]
    NoRedirect,
    #[error("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")]
    BadVerifier,
}

/// What the client needs to send the browser to the provider.
#[derive(Debug)]
pub struct Started {
    pub authorize_url: Url,
    /// Value for the state cookie, when the state is bound to the browser.
    pub browser_binding: Option<String>,
}

/// The callback's answer: where to send the browser. `None` means no allowed target exists (a plain 400).
#[derive(Debug)]
pub struct Finished {
    pub location: Option<Url>,
    pub outcome: Result<SignedIn, ThirdPartyFailure>,
}

#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user_id: UserId,
    pub outcome: AccountOutcome,
    pub flow_id: Option<FlowId>,
}

/// What the callback received.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Who starts a sign-in: the legacy endpoint or a flow, with or without a client-held PKCE verifier.
#[derive(Debug, Default)]
pub struct StartRequest<'a> {
    pub provider: &'a str,
    pub redirect_to: Option<&'a str>,
    pub client_verifier: Option<String>,
    pub flow_id: Option<FlowId>,
    pub connect_user_id: Option<UserId>,
}

/// The third-party machinery of one configuration.
#[derive(Debug)]
pub struct ThirdParty {
    microsoft: Option<Arc<MicrosoftClient>>,
    allow_list: RedirectAllowList,
    error_redirect: Option<Url>,
    default_redirect: Option<String>,
    policy: LinkingPolicy,
    /// Which groups sessions keep.
    group_filter: GroupFilter,
    /// The operator's custom claims, whose values each sign-in reads.
    claims_plan: Arc<ClaimsPlan>,
    sealer: Arc<Sealer>,
    clock: Arc<dyn Clock>,
    /// Refused targets already logged. Built anew with the allow-list, so a changed list warns afresh.
    refused_targets: FirstSeen,
    /// What admin-consent URLs are made of, whether or not the provider is enabled (consent may come first);
    /// `None` without a client ID or redirect URL.
    registration: Option<AppRegistration>,
    /// The tenant setting, when it parses.
    tenant_mode: Option<TenantMode>,
    /// Admin-consent URLs already logged for the operator.
    consent_warnings: FirstSeen,
}

impl ThirdParty {
    pub fn new(
        config: &Config,
        claims_plan: Arc<ClaimsPlan>,
        sealer: Arc<Sealer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ThirdPartyError> {
        let third_party = &config.third_party;
        let microsoft = match MicrosoftSettings::from_config(third_party)? {
            Some(settings) => {
                let settings = settings.reading_profile(graph_attributes(&claims_plan.custom_claims));
                Some(Arc::new(MicrosoftClient::new(settings, clock.clone())?))
            }
            None => None,
        };
        // The error redirect URL is always an allowed target, as in Hanko.
        let patterns = third_party
            .allowed_redirect_urls
            .iter()
            .chain(third_party.error_redirect_url.as_ref())
            .map(|pattern| {
                RedirectPattern::parse(pattern)
                    .map_err(|error| ThirdPartyError::RedirectPattern { pattern: pattern.clone(), error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            microsoft,
            allow_list: RedirectAllowList::new(patterns),
            error_redirect: third_party.error_redirect_url.as_deref().and_then(|url| Url::parse(url).ok()),
            default_redirect: third_party.default_redirect_url.clone(),
            policy: LinkingPolicy {
                allow_linking: third_party.providers.microsoft.allow_linking,
                allow_signup: config.account.allow_signup,
                require_verification: config.email.require_verification,
                email_limit: config.email.limit,
            },
            group_filter: GroupFilter::parse(&third_party.providers.microsoft.groups.keep)?,
            claims_plan,
            sealer,
            clock,
            refused_targets: FirstSeen::default(),
            registration: registration(third_party),
            tenant_mode: TenantMode::parse(&third_party.providers.microsoft.tenant).ok(),
            consent_warnings: FirstSeen::default(),
        })
    }

    /// The admin-consent URL for `tenant` (a GUID, a verified domain, or `organizations`/`common` for the
    /// administrator's own), by default for the configured tenant.
    pub fn admin_consent(&self, tenant: Option<&str>) -> Result<AdminConsent, AdminConsentError> {
        let registration = self.registration.as_ref().ok_or(AdminConsentError::NotConfigured)?;
        let tenant = match tenant {
            Some(tenant) => ConsentTenant::parse(tenant)?,
            None => self.tenant_mode.as_ref().and_then(ConsentTenant::for_mode).ok_or(ConsentTenantError::Consumers)?,
        };
        Ok(AdminConsent { url: registration.admin_consent_url(&tenant), tenant })
    }

    /// `failure` told in words a refused user can act on, when Microsoft refused because their tenant has not
    /// approved the app: the code stays (Hanko's frontends know it), the description carries the admin-consent
    /// URL. The user's tenant is unknown here (no token was issued), so the URL is the configured tenant's, or
    /// the administrator's own. Its parts are configuration and a parsed tenant, so the text is bounded and free of
    /// control characters. The operator is told once per URL.
    fn explain_admin_consent(&self, failure: ThirdPartyFailure) -> ThirdPartyFailure {
        let Ok(consent) = self.admin_consent(None) else { return failure };
        if self.consent_warnings.is_new(consent.url.as_str()) {
            tracing::warn!(
                url = %consent.url,
                "a Microsoft sign-in was refused because the user's tenant has not approved the app; {} must open \
                 the admin-consent URL (also printed by `gatehouse consent-url --tenant <tenant>`)",
                consent.tenant.who_approves()
            );
        }
        let description = format!(
            "This app needs an administrator of your organisation to approve it before you can sign in. Send your \
             administrator this link: {}",
            consent.url
        );
        ThirdPartyFailure { code: failure.code, description }
    }

    /// The enabled providers, for the flow API and `/.well-known/config`.
    pub fn enabled_providers(&self) -> Vec<&'static str> {
        self.microsoft.iter().map(|_| MICROSOFT).collect()
    }

    pub fn microsoft(&self) -> Option<&MicrosoftClient> {
        self.microsoft.as_deref()
    }

    /// Starts a sign-in: checks the target against the allow-list first, then seals the state.
    pub fn start(&self, request: StartRequest<'_>) -> Result<Started, StartError> {
        let client = match request.provider {
            MICROSOFT => self.microsoft.as_ref(),
            _ => None,
        }
        .ok_or_else(|| StartError::Provider(request.provider.chars().take(64).collect()))?;
        let redirect_to = request
            .redirect_to
            .map(str::to_owned)
            .or_else(|| self.default_redirect.clone())
            .ok_or(StartError::NoRedirect)?;
        let target = self.allow_list.check(&redirect_to).map_err(|_| {
            self.warn_refused_target(&redirect_to);
            StartError::RedirectNotAllowed(redirect_to.chars().take(256).collect())
        })?;
        if request.client_verifier.as_deref().is_some_and(|v| !pkce::is_valid_verifier(v)) {
            return Err(StartError::BadVerifier);
        }
        let client_verifier = request.client_verifier.is_some();
        let code_verifier = request.client_verifier.unwrap_or_else(pkce::new_verifier);
        let browser_binding = (!client_verifier).then(random::token);
        let state = ThirdPartyState {
            id: StateId::generate(),
            provider: MICROSOFT.to_owned(),
            tenant: client.settings().tenant().to_owned(),
            redirect_to: target.as_url().to_string(),
            nonce: random::token(),
            code_verifier,
            client_verifier,
            browser_binding: browser_binding.clone(),
            flow_id: request.flow_id,
            connect_user_id: request.connect_user_id,
            expires_at: ThirdPartyState::expiry_for(self.clock.now()),
        };
        let authorize_url =
            client.authorize_url(&state.seal(&self.sealer), &state.nonce, &pkce::challenge(&state.code_verifier));
        Ok(Started { authorize_url, browser_binding })
    }

    /// A warning naming the setting that would allow a refused target, once per target. The browser only shows
    /// "the value is invalid", so without this the operator would have nothing to go on. Only the origin and path
    /// are logged and remembered: the query of a page address may carry anything, codes and tokens included.
    fn warn_refused_target(&self, redirect_to: &str) {
        let target = match Url::parse(redirect_to) {
            Ok(url) => format!("{}{}", url.origin().ascii_serialization(), url.path()),
            Err(_) => "(not a URL)".to_owned(),
        };
        if self.refused_targets.is_new(&target) {
            tracing::warn!(
                page = ?target.chars().take(200).collect::<String>(),
                "refused a sign-in returning to a page outside the allow-list; if the page is your app, add a \
                 pattern for it to third_party.allowed_redirect_urls"
            );
        }
    }

    /// Finishes a sign-in. Every failure after the state is known goes to its (still allowed) `redirect_to`;
    /// before that, or if it is no longer allowed, to `error_redirect_url`.
    /// `over_limit`: the client is over `rate_limiter.callback_limits`, so the code is not redeemed.
    pub(crate) async fn finish(
        &self,
        app: &App,
        over_limit: bool,
        params: CallbackParams,
        browser_binding: Option<&str>,
        meta: &RequestMeta,
    ) -> Finished {
        let audit = &app.audit();
        let now = self.clock.now();
        let opened = match params.state.as_deref() {
            Some(value) => ThirdPartyState::open(&self.sealer, value, now),
            None => Err(StateError::Invalid),
        };
        let state = match opened {
            Ok(state) => state,
            Err(error) => {
                let description = match error {
                    StateError::Expired => "the sign-in took too long; please try again",
                    StateError::Invalid => "invalid state",
                };
                return self
                    .fail(
                        audit,
                        None,
                        self.error_redirect.clone(),
                        ThirdPartyFailure::new(ThirdPartyErrorCode::InvalidRequest, description),
                        meta,
                    )
                    .await;
            }
        };
        let target = self
            .allow_list
            .check(&state.redirect_to)
            .ok()
            .map(|t| t.into_url())
            .or_else(|| self.error_redirect.clone());
        if over_limit {
            let failure = ThirdPartyFailure::new(
                ThirdPartyErrorCode::RateLimitExceeded,
                "too many sign-ins from this address; please wait a minute and try again",
            );
            return self.fail(audit, Some(&state), target, failure, meta).await;
        }
        match self.complete(app, &state, params, browser_binding, now, meta).await {
            Ok((account, token)) => {
                let location = target.map(|mut url| {
                    url.query_pairs_mut().append_pair(TOKEN_QUERY, &token);
                    url
                });
                Finished {
                    location,
                    outcome: Ok(SignedIn {
                        user_id: account.user_id,
                        outcome: account.outcome,
                        flow_id: state.flow_id,
                    }),
                }
            }
            Err(failure) => self.fail(audit, Some(&state), target, failure, meta).await,
        }
    }

    async fn fail(
        &self,
        audit: &AuditLog<'_>,
        state: Option<&ThirdPartyState>,
        target: Option<Url>,
        failure: ThirdPartyFailure,
        meta: &RequestMeta,
    ) -> Finished {
        // Every failure, `server_error` included (unlike Hanko): a misconfigured client (`invalid_client` at
        // Microsoft) or a Microsoft outage is exactly what an operator looks for in the audit log. Anonymous rows
        // are bounded per client by the audit log.
        let connecting_user = state.and_then(|s| s.connect_user_id);
        audit.record("thirdparty_signin_signup_failed", connecting_user, Some(failure.code.as_str()), meta).await;
        let location = target.map(|mut url| {
            url.query_pairs_mut()
                .append_pair("error", failure.code.as_str())
                .append_pair("error_description", &failure.description);
            url
        });
        Finished { location, outcome: Err(failure) }
    }

    async fn complete(
        &self,
        app: &App,
        state: &ThirdPartyState,
        params: CallbackParams,
        browser_binding: Option<&str>,
        now: Timestamp,
        meta: &RequestMeta,
    ) -> Result<(ProviderAccount, String), ThirdPartyFailure> {
        let invalid = |description: &str| ThirdPartyFailure::new(ThirdPartyErrorCode::InvalidRequest, description);
        let server_error = |cause: &dyn std::fmt::Display| {
            tracing::error!(error = %cause, "third-party sign-in failed");
            ThirdPartyFailure::new(ThirdPartyErrorCode::ServerError, "")
        };
        if let Some(expected) = &state.browser_binding {
            let presented = browser_binding.unwrap_or_default();
            if !gatehouse_crypto::digest::constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
                return Err(invalid("the sign-in was started in another browser"));
            }
        }
        let store = app.store();
        match store.mark_state_used(state.id, Timestamp::from_secs(state.expires_at)).await {
            Ok(true) => {}
            Ok(false) => return Err(invalid("this sign-in response was already used")),
            Err(error) => return Err(server_error(&error)),
        }
        if let Some(error) = params.error.as_deref() {
            let description = params.error_description.as_deref();
            let failure = ThirdPartyFailure::from_provider(error, description);
            return Err(if needs_admin_consent(&[], description) {
                self.explain_admin_consent(failure)
            } else {
                failure
            });
        }
        let client = self
            .microsoft
            .as_ref()
            .filter(|_| state.provider == MICROSOFT)
            .ok_or_else(|| invalid("microsoft provider is disabled"))?;
        if state.tenant != client.settings().tenant() {
            return Err(invalid("the provider's tenant setting changed during the sign-in"));
        }
        let code = params
            .code
            .filter(|code| !code.is_empty() && code.len() <= 4096)
            .ok_or_else(|| invalid("auth code missing from request"))?;
        let tokens = client.redeem(&code, &state.code_verifier).await.map_err(|error| {
            tracing::warn!(%error, "code redemption failed");
            let failure =
                ThirdPartyFailure::new(error.code(), "could not exchange authorization code for access token");
            match error {
                MicrosoftError::Refused { needs_admin_consent: true, .. } => self.explain_admin_consent(failure),
                _ => failure,
            }
        })?;
        let user = client.verify_id_token(&tokens.id_token, &state.nonce, now).await.map_err(|error| {
            tracing::warn!(%error, "ID token refused");
            // Hanko's text, then the rule that refused the token (the rules' texts hold nothing from the token).
            let description = match &error {
                MicrosoftError::IdToken(rule) => format!("could not retrieve user data from provider: {rule}"),
                _ => "could not retrieve user data from provider".to_owned(),
            };
            ThirdPartyFailure::new(error.code(), description)
        })?;
        let facts = self.directory_facts(client, &user, tokens.access_token.as_ref(), now).await?;
        if state.connect_user_id.is_none() {
            // Refused before the account, the identity's data and the one-time token are written, rather than at the
            // exchange: a user would be signed up (with every group stored) who can never have a session.
            match app.sessions().check_fits(vec![format!("ext:{MICROSOFT}")], &facts).await {
                Ok(()) => {}
                Err(SessionError::TooLarge(error)) => {
                    tracing::error!(%error, "refused a sign-in whose session would be too large");
                    return Err(ThirdPartyFailure::unavailable(error.to_string()));
                }
                Err(error) => return Err(server_error(&error)),
            }
        }
        let profile = profile(&user, &facts);
        let token = random::token();
        let result = store
            .sign_in_with_provider(
                &profile,
                state.connect_user_id,
                now,
                |snapshot| {
                    decide(&LinkingInput {
                        provider_user_email: user.email.clone(),
                        existing_identity: snapshot.existing_identity.clone(),
                        email_owner: snapshot.email_owner.clone(),
                        user_email_count: snapshot.user_email_count,
                        signed_in_user: state.connect_user_id,
                        policy: self.policy.clone(),
                    })
                },
                |account| SignInRecords {
                    token: one_time_token(&token, state, account, &facts, now),
                    audit: audit_entries(account, &profile, meta, now),
                },
            )
            .await
            .map_err(|error| server_error(&error))?;
        let account = result.map_err(|refusal| {
            // The operator's side of a refusal; for an unproven email it names the optional claims to add.
            tracing::warn!(reason = %refusal, "third-party sign-in refused");
            ThirdPartyFailure::new(refusal.code(), refusal.to_string())
        })?;
        AuditLog::announce(audit_kind(account.outcome), Some(account.user_id), None);
        if let Some(holder) = account.displaced_holder {
            AuditLog::announce(EMAIL_TAKEN_BY_PROVEN_OWNER, Some(holder), None);
        }
        Ok((account, token))
    }

    /// What Microsoft knows about the user besides the ID token's identity claims: the tenant, app roles and kept
    /// groups, completed by the Graph reads the configuration asks for. A read that fails fails the sign-in: a
    /// session must never silently lack groups (or a claim) that the app relies on.
    async fn directory_facts(
        &self,
        client: &MicrosoftClient,
        user: &ProviderUser,
        access_token: Option<&AccessToken>,
        now: Timestamp,
    ) -> Result<DirectoryFacts, ThirdPartyFailure> {
        let settings = client.settings();
        let token = || access_token.ok_or(GraphError::NoAccessToken);
        let (groups, groups_from_graph) = match &user.groups {
            GroupsClaim::Absent => (Vec::new(), false),
            GroupsClaim::Listed(groups) => (groups.clone(), false),
            GroupsClaim::Overage if settings.read_groups => {
                let groups = async { client.graph_groups(token()?).await }
                    .await
                    .map_err(|error| graph_failure(&error, "the user's groups", GROUP_MEMBERSHIP_PERMISSION))?;
                (groups, true)
            }
            GroupsClaim::Overage => {
                tracing::warn!(
                    "refused a sign-in: the user is in more groups than fit in Microsoft's token; set \
                     third_party.providers.microsoft.groups.from_graph: true (and grant GroupMember.Read.All) to \
                     read them from Microsoft Graph"
                );
                return Err(ThirdPartyFailure::unavailable(
                    "you are a member of more groups than Microsoft can put in a sign-in; an administrator must let \
                     this app read group memberships from Microsoft Graph",
                ));
            }
        };
        // Personal accounts belong to no organisation.
        let name = if settings.read_tenant_name && user.tenant_id != CONSUMERS_TENANT_ID {
            async { client.graph_tenant_name(token()?).await }
                .await
                .map_err(|error| graph_failure(&error, "the organisation's name", PROFILE_PERMISSION))?
        } else {
            None
        };
        let profile = if settings.profile_attributes.is_empty() {
            None
        } else {
            let profile = async { client.graph_profile(token()?, &settings.profile_attributes).await }
                .await
                .map_err(|error| graph_failure(&error, "the user's profile", PROFILE_PERMISSION))?;
            Some(profile)
        };
        let custom = self
            .claims_plan
            .custom_claims
            .iter()
            .filter_map(|(name, claim)| {
                let value = claim.value(&user.id_token_claims, profile.as_ref(), &user.tenant_id);
                if value.is_none() {
                    // Absent or of another type: the session goes without it, and the operator can see why.
                    tracing::debug!(claim = %name, "a custom claim has no value of its type for this sign-in");
                }
                Some((name.clone(), value?))
            })
            .collect();
        Ok(DirectoryFacts {
            tenant: Tenant { id: user.tenant_id.clone(), name },
            roles: user.roles.clone(),
            groups: self.group_filter.apply(groups),
            groups_from_graph,
            custom,
            read_at: now,
        })
    }
}

/// A failed Graph read as the browser sees it: a missing permission is named, for the administrator.
fn graph_failure(error: &GraphError, what: &str, permission: &str) -> ThirdPartyFailure {
    tracing::warn!(%error, "reading {what} from Microsoft Graph failed");
    if error.is_permission() {
        ThirdPartyFailure::unavailable(format!(
            "Microsoft Graph refused to give {what}: the app needs the delegated permission {permission}, \
             with an administrator's consent where the organisation requires it"
        ))
    } else {
        ThirdPartyFailure::unavailable(format!("could not read {what} from Microsoft Graph; please try again"))
    }
}

/// What admin-consent URLs for `third_party` are made of, when it names a client and a redirect URL.
fn registration(third_party: &gatehouse_core::config::ThirdPartyConfig) -> Option<AppRegistration> {
    let microsoft = &third_party.providers.microsoft;
    let (client_id, redirect_url) = (microsoft.client_id.as_deref()?, third_party.redirect_url.as_deref()?);
    AppRegistration::new(&microsoft.cloud_instance, client_id, redirect_url).ok()
}

/// The audit event of an address taken from the user who held it with a weaker proof (or none), by a sign-in that
/// proved it more strongly. The row's actor is the holder who lost it; the request metadata is the newcomer's.
pub const EMAIL_TAKEN_BY_PROVEN_OWNER: &str = "email_taken_by_proven_owner";

/// The audit rows of a successful sign-in: the sign-in's, and the displaced holder's when an address moved.
fn audit_entries(
    account: &ProviderAccount,
    profile: &ProviderProfile,
    meta: &RequestMeta,
    now: Timestamp,
) -> Vec<AuditLogEntry> {
    let signed_in = AuditLog::entry(audit_kind(account.outcome), Some(account.user_id), None, meta, now);
    let displaced = account.displaced_holder.map(|holder| {
        let email = profile.email.as_ref();
        let proof = email.and_then(|email| email.proof).map(EmailProof::as_str);
        let address = email.map(|email| email.address.as_str());
        let details =
            serde_json::json!({ "address": address, "proven_owner_user_id": account.user_id, "proof": proof });
        AuditLogEntry {
            details: Some(details.to_string()),
            ..AuditLog::entry(EMAIL_TAKEN_BY_PROVEN_OWNER, Some(holder), None, meta, now)
        }
    });
    std::iter::once(signed_in).chain(displaced).collect()
}

/// The audit event of a successful third-party sign-in.
fn audit_kind(outcome: AccountOutcome) -> &'static str {
    match outcome {
        AccountOutcome::SignedUp => "thirdparty_signup_succeeded",
        AccountOutcome::SignedIn => "thirdparty_signin_succeeded",
        AccountOutcome::Linked => "thirdparty_linking_succeeded",
    }
}

/// The stored form of the one-time token `value`, made at `now`, that hands `account` to the app.
fn one_time_token(
    value: &str,
    state: &ThirdPartyState,
    account: &ProviderAccount,
    facts: &DirectoryFacts,
    now: Timestamp,
) -> NewToken {
    NewToken {
        id: TokenId::generate(),
        user_id: account.user_id,
        value_hash: hash(value),
        identity_id: Some(account.identity_id),
        code_verifier_hash: state.client_verifier.then(|| hash(&state.code_verifier)),
        is_flow: state.flow_id.is_some(),
        user_created: account.outcome == AccountOutcome::SignedUp,
        created_at: now,
        expires_at: now + TOKEN_LIFETIME,
        directory: Some(facts.clone()),
    }
}

/// How tokens and verifiers are stored: SHA-256, base64url. The values themselves are never stored.
pub fn hash(value: &str) -> String {
    gatehouse_crypto::digest::sha256_base64url(value.as_bytes())
}

fn profile(user: &ProviderUser, facts: &DirectoryFacts) -> ProviderProfile {
    let claims = serde_json::json!({
        "sub": user.subject,
        "tid": user.tenant_id,
        "oid": user.object_id,
        "email": user.email.as_ref().map(|email| &email.address),
        "email_verified": user.email.as_ref().map(|email| email.proof().is_some()),
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "preferred_username": user.preferred_username,
        "directory": facts,
    });
    ProviderProfile {
        provider_id: MICROSOFT.to_owned(),
        provider_user_id: user.subject.clone(),
        email: user
            .email
            .as_ref()
            .map(|email| ProviderEmailAddress { address: email.address.clone(), proof: email.proof() }),
        name: user.name.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        claims_json: claims.to_string(),
    }
}
