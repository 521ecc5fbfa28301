//! Sign in with Microsoft: the authorize URL, the code redemption, and the ID token checked the way Microsoft
//! prescribes for multi-tenant apps (RS256 only, key scoped by its JWKS `issuer`, `iss` built from `tid`).

use std::{sync::Arc, time::Duration};

use gatehouse_core::{
    clock::{Clock, Timestamp},
    config::{ClientAuthMethod, ClientSecret, MicrosoftProviderConfig, ThirdPartyConfig, usable_secrets},
    error::ThirdPartyErrorCode,
    microsoft::{
        claims::{
            ClaimsError, MicrosoftClaims, ProviderUser, TenantMode, TokenExpectations, provider_user, validate_claims,
        },
        consent,
        directory::{graph_base, graph_scopes},
    },
};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use url::Url;

use gatehouse_crypto::certificate::ClientAssertionKey;

use crate::{
    graph::AccessToken,
    jwks::{JwksCache, JwksError, ProviderKey},
};

/// Allowed clock difference between Microsoft and us when checking `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_SECS: i64 = 120;

/// The settings of the Microsoft provider that the client needs, taken from configuration.
#[derive(Clone, Debug)]
pub struct MicrosoftSettings {
    pub client_id: String,
    /// Newest first; see [`usable_secrets`].
    pub client_secrets: Vec<ClientSecret>,
    /// Newest first; certificates are tried before secrets.
    pub certificates: Vec<Arc<ClientAssertionKey>>,
    pub client_auth: ClientAuthMethod,
    pub redirect_url: String,
    pub cloud_instance: String,
    pub tenant_mode: TenantMode,
    pub allowed_tenants: Vec<String>,
    pub prompt: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Microsoft Graph of this cloud, for the reads below.
    pub graph_base: String,
    /// On a group overage, read the membership from Graph (else the sign-in is refused).
    pub read_groups: bool,
    pub read_tenant_name: bool,
    /// Profile attributes the operator's custom claims read from Graph (`$select`); empty: none.
    pub profile_attributes: Vec<String>,
}

impl MicrosoftSettings {
    /// `Ok(None)` when the provider is disabled or incomplete (configuration validation reports why); an error
    /// when its certificate cannot be used.
    pub fn from_config(third_party: &ThirdPartyConfig) -> Result<Option<Self>, UnusableCertificate> {
        let microsoft: &MicrosoftProviderConfig = &third_party.providers.microsoft;
        if !microsoft.enabled {
            return Ok(None);
        }
        let certificates = microsoft
            .client_certificates()
            .into_iter()
            .map(|certificate| {
                ClientAssertionKey::from_pem(
                    certificate.private_key.expose(),
                    &certificate.certificate,
                    &certificate.algorithm,
                )
                .map(Arc::new)
                .map_err(UnusableCertificate)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::assemble(third_party, microsoft, certificates))
    }

    fn assemble(
        third_party: &ThirdPartyConfig,
        microsoft: &MicrosoftProviderConfig,
        certificates: Vec<Arc<ClientAssertionKey>>,
    ) -> Option<Self> {
        Some(Self {
            client_id: microsoft.client_id.clone()?,
            client_secrets: Some(microsoft.client_secrets()).filter(|s| !s.is_empty() || !certificates.is_empty())?,
            certificates,
            client_auth: microsoft.client_auth_method,
            redirect_url: third_party.redirect_url.clone()?,
            cloud_instance: microsoft.cloud_instance.trim_end_matches('/').to_owned(),
            tenant_mode: TenantMode::parse(&microsoft.tenant).ok()?,
            allowed_tenants: microsoft.allowed_tenants.clone(),
            prompt: microsoft.prompt.clone(),
            connect_timeout: third_party.connect_timeout.as_duration(),
            request_timeout: third_party.request_timeout.as_duration(),
            graph_base: match &microsoft.graph_url {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None => graph_base(&microsoft.cloud_instance),
            },
            read_groups: microsoft.groups.from_graph,
            read_tenant_name: microsoft.read_tenant_name,
            profile_attributes: Vec::new(),
        })
    }

    /// Also reads these profile attributes from Graph at each sign-in (for custom claims).
    pub fn reading_profile(mut self, attributes: Vec<String>) -> Self {
        self.profile_attributes = attributes;
        self
    }

    /// What a sign-in asks for: OpenID Connect's scopes, and the Graph permissions the configured reads need.
    pub fn scope(&self) -> String {
        let read_profile = self.read_tenant_name || !self.profile_attributes.is_empty();
        std::iter::once("openid profile email".to_owned())
            .chain(graph_scopes(&self.graph_base, self.read_groups, read_profile))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The tenant segment of Microsoft's URLs (`common`, `organizations`, a GUID, …), from the tenant mode.
    pub fn tenant(&self) -> &str {
        self.tenant_mode.authority_segment()
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.cloud_instance, self.tenant())
    }
}

/// A configured client certificate that cannot sign client assertions.
#[derive(Debug, thiserror::Error)]
#[error("third_party.providers.microsoft.certificate: {0}")]
pub struct UnusableCertificate(#[from] gatehouse_crypto::certificate::CertificateError);

/// Why a sign-in with Microsoft failed. `Display` is for logs; browsers get only [`MicrosoftError::code`].
#[derive(Debug, thiserror::Error)]
pub enum MicrosoftError {
    #[error("calling Microsoft failed: {0}")]
    Unreachable(String),
    #[error("Microsoft refused the code redemption: {error} (HTTP {status})")]
    Refused {
        status: u16,
        error: String,
        /// The refusal says the tenant has not approved the app and an administrator must (`AADSTS65001`, …).
        needs_admin_consent: bool,
    },
    #[error("every configured client secret and certificate has expired")]
    NoUsableCredential,
    #[error("Microsoft's token response has no id_token")]
    NoIdToken,
    #[error("the ID token is not acceptable: {0}")]
    IdToken(#[from] IdTokenError),
    #[error(transparent)]
    Keys(#[from] JwksError),
}

/// Why an ID token was refused: each rule has its own variant, so a refusal can say which rule refused it. The texts
/// hold nothing from the token, so they may reach the browser.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token is not signed with RS256")]
    NotRs256,
    #[error("the ID token names no signing key (kid)")]
    NoKid,
    #[error("the ID token is signed by a key the provider does not publish")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token is signed by a key that may not sign for its issuer")]
    KeyIssuer,
    #[error(transparent)]
    Claims(#[from] ClaimsError),
}

impl MicrosoftError {
    /// Hanko's code for the browser: our or Microsoft's fault is `server_error`; a bad code or token from the
    /// user's side of the flow is `invalid_request`.
    pub fn code(&self) -> ThirdPartyErrorCode {
        match self {
            Self::Unreachable(_) | Self::NoUsableCredential | Self::Keys(JwksError::Fetch(_)) => {
                ThirdPartyErrorCode::ServerError
            }
            Self::Refused { status, error, .. } if *status >= 500 || error == "invalid_client" => {
                ThirdPartyErrorCode::ServerError
            }
            _ => ThirdPartyErrorCode::InvalidRequest,
        }
    }
}

/// How one token request authenticates Gatehouse.
#[derive(Clone, Copy)]
enum Credential<'a> {
    Secret(&'a ClientSecret),
    Certificate(&'a ClientAssertionKey),
}

impl Credential<'_> {
    /// How logs name it: a secret's last characters, a certificate's thumbprint.
    fn describe(&self) -> String {
        match self {
            Self::Secret(secret) => format!("secret {}", secret.hint()),
            Self::Certificate(key) => format!("certificate {}", key.thumbprint()),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
}

/// What a redeemed code gives: the ID token, and the access token for the Graph reads (when Microsoft sent one).
#[derive(Debug)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<AccessToken>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// A client for one Microsoft app registration.
#[derive(Debug)]
pub struct MicrosoftClient {
    settings: MicrosoftSettings,
    http: reqwest::Client,
    jwks: JwksCache,
    clock: Arc<dyn Clock>,
    credential_failovers: std::sync::atomic::AtomicU64,
}

impl MicrosoftClient {
    /// A client whose time-based rules (credential expiry, JWKS refresh) read `clock`.
    pub fn new(settings: MicrosoftSettings, clock: Arc<dyn Clock>) -> Result<Self, MicrosoftError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MicrosoftError::Unreachable(e.to_string()))?;
        let jwks = JwksCache::new(http.clone(), settings.endpoint("discovery/v2.0/keys"), clock.clone());
        Ok(Self { settings, http, jwks, clock, credential_failovers: Default::default() })
    }

    pub fn settings(&self) -> &MicrosoftSettings {
        &self.settings
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// How often Microsoft refused a credential and the next one was tried.
    pub fn credential_failovers(&self) -> u64 {
        self.credential_failovers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where to send the browser: `{cloud_instance}/{tenant}/oauth2/v2.0/authorize` with PKCE S256 and a nonce.
    pub fn authorize_url(&self, state: &str, nonce: &str, code_challenge: &str) -> Url {
        let mut url = Url::parse(&self.settings.endpoint("oauth2/v2.0/authorize")).expect("validated cloud_instance");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", &self.settings.redirect_url)
                .append_pair("response_type", "code")
                .append_pair("scope", &self.settings.scope())
                .append_pair("state", state)
                .append_pair("nonce", nonce)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(prompt) = &self.settings.prompt {
                query.append_pair("prompt", prompt);
            }
        }
        url
    }

    /// Redeems an authorization code for the raw ID token and the access token. No response body ever reaches the
    /// browser.
    /// With the newest usable credential (certificates first, then secrets; expired ones are skipped); if
    /// Microsoft answers `invalid_client` (expired, revoked, or not uploaded yet), the next one is tried once, so
    /// credentials can be rotated without downtime.
    pub async fn redeem(&self, code: &str, code_verifier: &str) -> Result<Tokens, MicrosoftError> {
        let now = self.clock.now();
        let certificates = self.settings.certificates.iter().filter(|key| key.not_after() > now);
        let credentials: Vec<Credential<'_>> = certificates
            .map(|key| Credential::Certificate(key))
            .chain(usable_secrets(&self.settings.client_secrets, now).into_iter().map(Credential::Secret))
            .collect();
        let mut result = Err(MicrosoftError::NoUsableCredential);
        // Each usable credential at most once: a certificate not uploaded yet and a revoked secret must not hide a
        // good secret further down the list.
        for (index, credential) in credentials.iter().enumerate() {
            result = self.redeem_with(code, code_verifier, *credential, now).await;
            match (&result, credentials.get(index + 1)) {
                (Err(MicrosoftError::Refused { error, .. }), Some(next)) if error == "invalid_client" => {
                    self.credential_failovers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        refused = %credential.describe(),
                        next = %next.describe(),
                        "Microsoft refused the credential (expired, revoked or not uploaded?); trying the next one"
                    );
                }
                _ => break,
            }
        }
        result
    }

    async fn redeem_with(
        &self,
        code: &str,
        code_verifier: &str,
        credential: Credential<'_>,
        now: Timestamp,
    ) -> Result<Tokens, MicrosoftError> {
        let settings = &self.settings;
        let token_endpoint = settings.endpoint("oauth2/v2.0/token");
        let scope = settings.scope();
        let assertion: String;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", settings.redirect_url.as_str()),
            ("client_id", settings.client_id.as_str()),
            ("code_verifier", code_verifier),
            ("scope", scope.as_str()),
        ];
        let mut request = self.http.post(&token_endpoint);
        match (credential, settings.client_auth) {
            (Credential::Certificate(key), _) => {
                assertion = key
                    .assertion(&settings.client_id, &token_endpoint, now)
                    .map_err(|e| MicrosoftError::Unreachable(e.to_string()))?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
                form.push(("client_assertion", &assertion));
            }
            (Credential::Secret(secret), ClientAuthMethod::ClientSecretPost) => {
                form.push(("client_secret", secret.value.expose()));
            }
            (Credential::Secret(secret), ClientAuthMethod::ClientSecretBasic) => {
                // RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined and base64-encoded.
                let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request = request.basic_auth(encode(&settings.client_id), Some(encode(secret.value.expose())));
            }
        }
        let response =
            request.form(&form).send().await.map_err(|e| MicrosoftError::Unreachable(crate::call_failure(e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.json::<TokenErrorResponse>().await.ok();
            let needs_admin_consent = body
                .as_ref()
                .is_some_and(|body| consent::needs_admin_consent(&body.error_codes, body.error_description.as_deref()));
            let error = body.and_then(|body| body.error).unwrap_or_else(|| "unknown".into());
            return Err(MicrosoftError::Refused { status: status.as_u16(), error, needs_admin_consent });
        }
        let body: TokenResponse =
            response.json().await.map_err(|e| MicrosoftError::Unreachable(crate::call_failure(e)))?;
        Ok(Tokens {
            id_token: body.id_token.ok_or(MicrosoftError::NoIdToken)?,
            access_token: body.access_token.filter(|token| !token.is_empty()).map(AccessToken::new),
        })
    }

    /// Verifies the ID token and maps its claims to a provider user.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        expected_nonce: &str,
        now: Timestamp,
    ) -> Result<ProviderUser, MicrosoftError> {
        let key = self.jwks.key(&id_token_key_id(id_token)?).await.map_err(|error| match error {
            JwksError::UnknownKey(_) => MicrosoftError::IdToken(IdTokenError::UnknownKey),
            fetch => MicrosoftError::Keys(fetch),
        })?;
        let expectations = TokenExpectations {
            client_id: self.settings.client_id.clone(),
            cloud_instance: self.settings.cloud_instance.clone(),
            tenant_mode: self.settings.tenant_mode.clone(),
            allowed_tenants: self.settings.allowed_tenants.clone(),
            expected_nonce: Some(expected_nonce.to_owned()),
            now,
            max_skew_secs: CLOCK_SKEW_SECS,
        };
        Ok(check_id_token(id_token, &key, &expectations)?)
    }
}

/// The `kid` in an RS256 ID token's header: which of the provider's keys must have signed it.
pub fn id_token_key_id(id_token: &str) -> Result<String, IdTokenError> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| IdTokenError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(IdTokenError::NotRs256);
    }
    header.kid.ok_or(IdTokenError::NoKid)
}

/// The checks of an ID token once its key is known: the signature (RS256 only), the key's issuer scoping, then
/// Microsoft's claim rules ([`validate_claims`]); the user it describes. Pure, so it can be fuzzed.
pub fn check_id_token(
    id_token: &str,
    key: &ProviderKey,
    expectations: &TokenExpectations,
) -> Result<ProviderUser, IdTokenError> {
    // Signature only (and RS256 only): time, audience and issuer rules are Microsoft-specific and live in the core.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims: MicrosoftClaims = jsonwebtoken::decode(id_token, &key.key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::Signature,
            _ => IdTokenError::Malformed,
        })?
        .claims;
    if let Some(key_issuer) = &key.issuer {
        // A key may only sign for the issuer its JWKS entry names; `{tenantid}` stands for the token's tenant.
        if key_issuer.replace("{tenantid}", &claims.tid) != claims.iss {
            return Err(IdTokenError::KeyIssuer);
        }
    }
    validate_claims(&claims, expectations)?;
    Ok(provider_user(&claims)?)
}
