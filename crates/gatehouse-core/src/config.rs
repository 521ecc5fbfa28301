//! The configuration model: Hanko's key names where they exist, Gatehouse's own where Hanko has none.
//!
//! Loading (file, environment) lives in the binary; this module only says what a configuration is, what its
//! defaults are, and which combinations are invalid. Every struct refuses unknown keys, so a typo is an error
//! instead of a silently ignored setting.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::SocketAddr,
    ops::RangeInclusive,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::{
    clock::Timestamp,
    custom_claims::{ClaimType, CustomClaim},
    duration::GoDuration,
    jwt_template::{ClaimsPlan, JwtTemplate, TEMPLATE_PATH},
};

pub mod hanko;

/// A secret from the configuration. It never prints or serialises its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters: enough for a person to recognise a secret (Azure shows as much), useless to
    /// anyone else.
    pub fn hint(&self) -> String {
        let tail: Vec<char> = self.0.chars().rev().take(4).collect();
        format!("…{}", tail.into_iter().rev().collect::<String>())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// What stands for a database password while a URL is printed: letters only, so the URL parser leaves it as it is.
const REDACTED_PASSWORD: &str = "REDACTEDPASSWORD";

/// A database URL; its password is redacted whenever it is printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            // The URL parser would percent-encode `<redacted>`; a plain placeholder reads as it is written.
            Ok(mut url) if url.password().is_some() => match url.set_password(Some(REDACTED_PASSWORD)) {
                Ok(()) => url.to_string().replacen(REDACTED_PASSWORD, "<redacted>", 1),
                Err(()) => "<redacted>".to_owned(),
            },
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// Keys that encrypt data at rest (signing keys, provider secrets, third-party state). The first one
    /// encrypts; all of them decrypt, so a new key can be prepended without losing data.
    pub secret_keys: Vec<Secret>,
    /// Hanko v2's spelling of `secret_keys`.
    pub secrets: SecretsConfig,
    pub session: SessionConfig,
    pub email: EmailConfig,
    pub account: AccountConfig,
    pub third_party: ThirdPartyConfig,
    pub rate_limiter: RateLimiterConfig,
    pub audit_log: AuditLogConfig,
    pub log: LogConfig,
}

/// Hanko's `audit_log` section, the part Gatehouse has: how long rows are kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditLogConfig {
    /// Rows older than this are deleted by the periodic sweep (Hanko's default: 30 days).
    pub retention: GoDuration,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        Self { retention: GoDuration::from_secs(720 * 3600) }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub public: PublicServerConfig,
    pub admin: AdminServerConfig,
    /// How often an instance checks the database for identity-provider settings saved by the admin API (on any
    /// instance); a change applies within this time everywhere.
    pub settings_poll_interval: GoDuration,
    /// How long a slow or idle client may hold a connection (both listeners).
    pub timeouts: ServerTimeouts,
    /// Most connections each listener keeps open; one more is closed at once. Unset: as many as the open-file
    /// limit allows (see [`Config::max_connections_per_listener`]).
    pub max_connections: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public: PublicServerConfig::default(),
            admin: AdminServerConfig::default(),
            settings_poll_interval: GoDuration::from_secs(2),
            timeouts: ServerTimeouts::default(),
            max_connections: None,
        }
    }
}

/// Limits that keep slow clients (slowloris) from holding connections for ever.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTimeouts {
    /// The longest wait for a request's headers, counted from the connection's start or from the end of the
    /// previous response; so it is also how long a kept-alive connection may sit idle before it is closed.
    pub read_header: GoDuration,
    /// The longest one request may take, reading its body included; it is answered 408 after that.
    pub request: GoDuration,
    /// How long, after SIGTERM, the server goes on serving while `/health/ready` answers 503, so that a load
    /// balancer takes it out of rotation before it stops accepting connections. Zero stops accepting at once.
    pub drain: GoDuration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            read_header: GoDuration::from_secs(10),
            request: GoDuration::from_secs(30),
            drain: GoDuration::from_secs(0),
        }
    }
}

/// The admin API and console: a listener of its own, meant for a private network or loopback only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminServerConfig {
    pub enabled: bool,
    pub address: String,
    /// More `Host` names the admin listener answers to (`admin.internal`, or `admin.internal:8443` for one
    /// port), for operators who reach it through a name. See [`AdminServerConfig::allows_host`].
    pub allowed_hosts: Vec<String>,
    /// Admin API keys, each either the key itself or, better, its hash as printed by `gatehouse admin-key
    /// hash` (`sha256:…`). Keys created with `gatehouse admin-key new` live in the database instead.
    pub api_keys: Vec<Secret>,
}

impl Default for AdminServerConfig {
    fn default() -> Self {
        Self { enabled: true, address: "127.0.0.1:8001".into(), allowed_hosts: Vec::new(), api_keys: Vec::new() }
    }
}

impl AdminServerConfig {
    /// Whether a request's `Host` names the admin listener bound at `bound`: its own IP address (any IP address
    /// when it listens on all of them, any loopback address or `localhost` when it listens on loopback) with its
    /// port, or a name from `allowed_hosts`. Any other name is refused: a page whose name was rebound to this
    /// listener's address (DNS rebinding) still sends its own name.
    pub fn allows_host(&self, host: &str, bound: SocketAddr) -> bool {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => (name, port.parse::<u16>().ok()),
            _ => (host, Some(80)),
        };
        let listed = self.allowed_hosts.iter().any(|allowed| {
            allowed.eq_ignore_ascii_case(host) || (!allowed.contains(':') && allowed.eq_ignore_ascii_case(name))
        });
        if listed {
            return true;
        }
        let own_address = match name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            Ok(ip) => ip == bound.ip() || bound.ip().is_unspecified() || (bound.ip().is_loopback() && ip.is_loopback()),
            Err(_) => name.eq_ignore_ascii_case("localhost") && bound.ip().is_loopback(),
        };
        own_address && port == Some(bound.port())
    }
}

/// The prefix of an admin key's hash in `server.admin.api_keys`.
pub const ADMIN_KEY_HASH_PREFIX: &str = "sha256:";
/// Plain admin keys in the configuration must be at least this long; generated keys are longer.
pub const MIN_ADMIN_KEY_LEN: usize = 32;
/// An admin key's name is shown on one line of `admin-key list`, the console and the audit log.
pub const MAX_ADMIN_KEY_NAME_CHARS: usize = 64;

/// Checks an admin key's name: one line of printable text, not blank, at most [`MAX_ADMIN_KEY_NAME_CHARS`].
/// Control characters (a newline, an escape sequence) would forge lines in listings and logs.
pub fn check_admin_key_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a name must not be empty or blank".into());
    }
    if name.chars().any(char::is_control) {
        return Err("a name must not contain control characters such as a newline".into());
    }
    if name.chars().count() > MAX_ADMIN_KEY_NAME_CHARS {
        return Err(format!("a name must be at most {MAX_ADMIN_KEY_NAME_CHARS} characters"));
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicServerConfig {
    pub address: String,
    pub cors: CorsConfig,
    /// Networks (CIDRs) of the reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client;
    /// see [`crate::client_address`]. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for PublicServerConfig {
    fn default() -> Self {
        Self { address: "127.0.0.1:8000".into(), cors: CorsConfig::default(), trusted_proxies: Vec::new() }
    }
}

impl PublicServerConfig {
    /// The callback URL of a Gatehouse reached directly on this listener, as in development mode: a wildcard
    /// address is reached on loopback. `None` when no port is known yet (port 0).
    pub fn direct_redirect_url(&self) -> Option<String> {
        let mut address = self.address.parse::<SocketAddr>().ok().filter(|address| address.port() != 0)?;
        if address.ip().is_unspecified() {
            address.set_ip(match address {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Some(format!("http://{address}/thirdparty/callback"))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API with credentials: exact (`https://app.example.com`) or every subdomain of a
    /// domain (`https://*.example.com`); see [`crate::origin`].
    pub allow_origins: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` (embedded, the default) or `postgres://user:pass@host/db`.
    pub url: DatabaseUrl,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: DatabaseUrl::new("sqlite://gatehouse.db"), max_connections: 10 }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    pub keys: Vec<Secret>,
}

/// How session JWTs are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSA-2048 PKCS#1 v1.5 with SHA-256, the default: what Hanko signs with (apps written for Hanko often pin
    /// it, as do some API gateways), and the fastest to verify, which every request of every app does. Signing
    /// costs more, but only once per sign-in. Figures: `cargo bench -p gatehouse-crypto`, `BENCHMARKS.md`.
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256: smaller tokens.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::RS256, Self::ES256, Self::EdDSA].into_iter().find(|alg| alg.as_str() == text)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub lifespan: GoDuration,
    /// Most sessions a user may hold; issuing one more drops the oldest.
    pub limit: usize,
    pub audience: Vec<String>,
    pub issuer: Option<String>,
    pub algorithm: SigningAlgorithm,
    /// Deliver the JWT in `X-Auth-Token` (and no cookie), for frontends on another site.
    pub enable_auth_token_header: bool,
    pub cookie: CookieConfig,
    /// Claims added to every session JWT (Hanko's key); see [`crate::jwt_template`].
    pub jwt_template: Option<JwtTemplateConfig>,
    /// Claims taken at each sign-in and put in the session JWT under their names; see [`crate::custom_claims`].
    pub custom_claims: BTreeMap<String, CustomClaimConfig>,
    /// The largest session JWT Gatehouse mints, in bytes; a sign-in whose JWT would be larger is refused.
    pub max_jwt_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            lifespan: GoDuration::from_secs(12 * 3600),
            limit: 5,
            audience: vec!["localhost".into()],
            issuer: None,
            algorithm: SigningAlgorithm::default(),
            enable_auth_token_header: false,
            cookie: CookieConfig::default(),
            jwt_template: None,
            custom_claims: BTreeMap::new(),
            max_jwt_bytes: 3800,
        }
    }
}

/// What `session.max_jwt_bytes` may be: a JWT under 1 KiB leaves no room for the built-in claims and a
/// signature, and no common server or proxy accepts a header over 64 KiB.
pub const MAX_JWT_BYTES_RANGE: RangeInclusive<usize> = 1024..=65_536;

/// Hanko's `session.jwt_template`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtTemplateConfig {
    /// Claim name to value: a scalar, a map, a list, or a string with placeholders such as `{{.User.UserID}}`.
    pub claims: serde_json::Map<String, Value>,
}

/// One entry of `session.custom_claims`: the claim's type and exactly one source.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomClaimConfig {
    #[serde(rename = "type")]
    pub claim_type: ClaimType,
    /// A claim of the ID token.
    #[serde(default)]
    pub id_token: Option<String>,
    /// A property of the Microsoft Graph user.
    #[serde(default)]
    pub graph: Option<String>,
    /// A constant per tenant: tenant GUID (or `*` for the others) to value.
    #[serde(default)]
    pub per_tenant: Option<BTreeMap<String, Value>>,
}

impl SessionConfig {
    /// The checked custom claims, template and size cap, built once at start; every problem when they are not
    /// valid. Issues inside the template or a declaration name their path in the message.
    pub fn claims_plan(&self) -> Result<ClaimsPlan, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        if !MAX_JWT_BYTES_RANGE.contains(&self.max_jwt_bytes) {
            issues.push(ConfigIssue {
                key: "session.max_jwt_bytes",
                message: format!(
                    "must be between {} and {} bytes",
                    MAX_JWT_BYTES_RANGE.start(),
                    MAX_JWT_BYTES_RANGE.end()
                ),
            });
        }
        let mut custom_claims = BTreeMap::new();
        for (name, config) in &self.custom_claims {
            match CustomClaim::parse(name, config) {
                Ok(claim) => {
                    custom_claims.insert(name.clone(), claim);
                }
                Err(messages) => issues.extend(messages.into_iter().map(|message| ConfigIssue {
                    key: "session.custom_claims",
                    message: format!("{name}: {message}"),
                })),
            }
        }
        // Every declared name, valid or not, so that a bad declaration is reported once, not again by the template.
        let declared: BTreeSet<String> = self.custom_claims.keys().cloned().collect();
        let no_claims = serde_json::Map::new();
        let claims = self.jwt_template.as_ref().map_or(&no_claims, |template| &template.claims);
        let template = JwtTemplate::parse(claims, &declared).unwrap_or_else(|found| {
            issues.extend(found.into_iter().map(|issue| {
                let path = issue.path.strip_prefix(TEMPLATE_PATH).unwrap_or(&issue.path).trim_start_matches('.');
                ConfigIssue { key: TEMPLATE_PATH, message: format!("{path}: {}", issue.message) }
            }));
            JwtTemplate::default()
        });
        if issues.is_empty() {
            Ok(ClaimsPlan { template, custom_claims, max_jwt_bytes: self.max_jwt_bytes })
        } else {
            Err(issues)
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    #[default]
    Strict,
    Lax,
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieRetention {
    /// The cookie lives as long as the session.
    #[default]
    Persistent,
    /// A browser-session cookie, gone when the browser closes.
    Session,
}

impl CookieRetention {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Persistent => "persistent",
            Self::Session => "session",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    pub name: String,
    pub domain: Option<String>,
    pub same_site: SameSite,
    pub secure: bool,
    pub http_only: bool,
    pub retention: CookieRetention,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "hanko".into(),
            domain: None,
            same_site: SameSite::Strict,
            secure: true,
            http_only: true,
            retention: CookieRetention::Persistent,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    pub require_verification: bool,
    /// Most email addresses a user may have.
    pub limit: usize,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self { require_verification: true, limit: 5 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    pub allow_signup: bool,
    pub allow_deletion: bool,
}

impl Default for AccountConfig {
    fn default() -> Self {
        Self { allow_signup: true, allow_deletion: false }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThirdPartyConfig {
    /// Sent to the provider as `redirect_uri`: `<api base>/thirdparty/callback`.
    pub redirect_url: Option<String>,
    pub error_redirect_url: Option<String>,
    pub default_redirect_url: Option<String>,
    pub allowed_redirect_urls: Vec<String>,
    /// Connect timeout for calls to identity providers.
    pub connect_timeout: GoDuration,
    /// Total timeout for one call to an identity provider.
    pub request_timeout: GoDuration,
    pub providers: ProvidersConfig,
}

impl Default for ThirdPartyConfig {
    fn default() -> Self {
        Self {
            redirect_url: None,
            error_redirect_url: None,
            default_redirect_url: None,
            allowed_redirect_urls: Vec::new(),
            connect_timeout: GoDuration::from_secs(5),
            request_timeout: GoDuration::from_secs(10),
            providers: ProvidersConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    pub microsoft: MicrosoftProviderConfig,
}

pub const MICROSOFT_CLOUD: &str = "https://login.microsoftonline.com";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MicrosoftProviderConfig {
    pub enabled: bool,
    pub client_id: Option<String>,
    /// The client secret (Hanko's key). Counts as the newest of `secrets`.
    pub secret: Option<Secret>,
    /// More client secrets, newest first, each with an optional expiry: add the new secret in Azure and here,
    /// and remove the old one later, without downtime.
    pub secrets: Vec<ClientSecretConfig>,
    /// A certificate credential (`private_key_jwt`). Certificates are tried before secrets.
    pub certificate: Option<CertificateConfig>,
    /// More certificates, newest first, for rotation like `secrets`.
    pub certificates: Vec<CertificateConfig>,
    /// Off by default: linking a Microsoft account to an existing user by email is how nOAuth takes accounts over.
    pub allow_linking: bool,
    pub prompt: Option<String>,
    /// `common`, `organizations`, `consumers`, a tenant GUID or a verified domain.
    pub tenant: String,
    pub allowed_tenants: Vec<String>,
    pub cloud_instance: String,
    /// How Gatehouse authenticates to Microsoft's token endpoint with the secret.
    pub client_auth_method: ClientAuthMethod,
    /// Which groups sessions carry, and what happens when a user has more than fit in a token.
    pub groups: GroupsConfig,
    /// Read the tenant's display name from Microsoft Graph at each sign-in (`/organization`, permission
    /// `User.Read`), for the session's `tenant.name`.
    pub read_tenant_name: bool,
    /// Microsoft Graph's base URL. Unset: the Graph of the cloud `cloud_instance` belongs to.
    pub graph_url: Option<String>,
}

/// `third_party.providers.microsoft.groups`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// When the token has too many groups (overage), read the membership from Microsoft Graph (delegated
    /// permission `GroupMember.Read.All`, which needs an administrator's consent). Off: such a sign-in is refused,
    /// never given a session without its groups.
    pub from_graph: bool,
    /// Keep only these groups in sessions: group values, or prefixes ending in `*`. Empty keeps every group.
    pub keep: Vec<String>,
}

/// One client secret with its expiry, as Azure shows it (`2027-05-31`, or an RFC 3339 time).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecretConfig {
    pub value: Secret,
    pub expires_at: Option<String>,
}

/// A certificate credential: the private key (PEM, kept secret) and the certificate uploaded to Azure (PEM).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub private_key: Secret,
    pub certificate: String,
    /// The client assertion's algorithm: `PS256` (Microsoft's recommendation) or `RS256`.
    #[serde(default = "default_assertion_algorithm")]
    pub algorithm: String,
}

impl CertificateConfig {
    /// What is wrong with this certificate credential, by field.
    pub fn issues(&self) -> Vec<(&'static str, &'static str)> {
        let mut issues = Vec::new();
        if !self.private_key.expose().contains("PRIVATE KEY-----") {
            issues.push(("third_party.providers.microsoft.certificate.private_key", "must be a PEM private key"));
        }
        if !self.certificate.contains("-----BEGIN CERTIFICATE-----") {
            issues.push(("third_party.providers.microsoft.certificate.certificate", "must be a PEM certificate"));
        }
        if !matches!(self.algorithm.as_str(), "PS256" | "RS256") {
            issues.push(("third_party.providers.microsoft.certificate.algorithm", "must be PS256 or RS256"));
        }
        issues
    }
}

fn default_assertion_algorithm() -> String {
    "PS256".into()
}

/// A client secret ready for use: its value and, when known, when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSecret {
    pub value: Secret,
    pub expires_at: Option<Timestamp>,
}

impl ClientSecret {
    /// See [`Secret::hint`].
    pub fn hint(&self) -> String {
        self.value.hint()
    }
}

/// Parses an expiry: a date means the end of that day (UTC).
pub fn parse_expiry(text: &str) -> Result<Timestamp, String> {
    use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Timestamp::from_secs(at.unix_timestamp()));
    }
    time::Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|date| Timestamp::from_secs(date.with_hms(23, 59, 59).map_or(0, |at| at.assume_utc().unix_timestamp())))
        .map_err(|_| format!("{text:?} is not a date (2027-05-31) or an RFC 3339 time"))
}

impl MicrosoftProviderConfig {
    /// Every configured secret, newest first: `secret`, then `secrets`. Expiries that do not parse are reported
    /// by validation.
    pub fn client_secrets(&self) -> Vec<ClientSecret> {
        let first = self.secret.iter().map(|value| ClientSecret { value: value.clone(), expires_at: None });
        let more = self.secrets.iter().map(|secret| ClientSecret {
            value: secret.value.clone(),
            expires_at: secret.expires_at.as_deref().and_then(|at| parse_expiry(at).ok()),
        });
        first.chain(more).filter(|secret| !secret.value.expose().is_empty()).collect()
    }
}

impl MicrosoftProviderConfig {
    /// Every configured certificate, newest first: `certificate`, then `certificates`.
    pub fn client_certificates(&self) -> Vec<&CertificateConfig> {
        self.certificate.iter().chain(&self.certificates).collect()
    }
}

/// The secrets to try, in order, at `now`: newest first, expired ones left out.
pub fn usable_secrets(secrets: &[ClientSecret], now: Timestamp) -> Vec<&ClientSecret> {
    secrets.iter().filter(|secret| secret.expires_at.is_none_or(|at| at > now)).collect()
}

/// Secrets that expire within `window` of `now` (or have expired), for warnings.
pub fn expiring_secrets(secrets: &[ClientSecret], now: Timestamp, window: std::time::Duration) -> Vec<&ClientSecret> {
    secrets.iter().filter(|secret| secret.expires_at.is_some_and(|at| at <= now + window)).collect()
}

/// Client authentication at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `client_secret` in the form body: what Microsoft documents.
    #[default]
    ClientSecretPost,
    /// HTTP Basic authentication.
    ClientSecretBasic,
}

impl Default for MicrosoftProviderConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            client_id: None,
            secret: None,
            secrets: Vec::new(),
            certificate: None,
            certificates: Vec::new(),
            allow_linking: false,
            prompt: None,
            tenant: "common".into(),
            allowed_tenants: Vec::new(),
            cloud_instance: MICROSOFT_CLOUD.into(),
            client_auth_method: ClientAuthMethod::default(),
            groups: GroupsConfig::default(),
            read_tenant_name: false,
            graph_url: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimiterConfig {
    pub enabled: bool,
    /// Where the counters live: this instance's memory, or Redis shared by every instance.
    pub store: RateLimitStore,
    pub redis_config: RedisConfig,
    /// Failed token exchanges per client and interval.
    pub token_limits: RateLimit,
    /// New flows (`POST /login`, `/registration`, `/profile` without an action) per client and interval: each is a
    /// row stored for an hour, for anyone who asks.
    pub flow_limits: RateLimit,
    /// Provider callbacks carrying a code per client and interval: each valid one costs a request to Microsoft
    /// with the app's credential, from the app's Microsoft throttling budget.
    pub callback_limits: RateLimit,
}

impl Default for RateLimiterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            store: RateLimitStore::InMemory,
            redis_config: RedisConfig::default(),
            token_limits: RateLimit { tokens: 3, interval: GoDuration::from_secs(60) },
            flow_limits: RateLimit { tokens: 60, interval: GoDuration::from_secs(60) },
            callback_limits: RateLimit { tokens: 20, interval: GoDuration::from_secs(60) },
        }
    }
}

/// Hanko's `rate_limiter.store` values; `memory` is accepted for `in_memory`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitStore {
    #[default]
    #[serde(alias = "memory")]
    InMemory,
    Redis,
}

/// Hanko's `rate_limiter.redis_config`, plus Gatehouse's `key_prefix`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `host:port`, as in Hanko.
    pub address: String,
    pub password: Option<Secret>,
    /// Prepended to every key, so that deployments (or tests) can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { address: "127.0.0.1:6379".into(), password: None, key_prefix: "gatehouse:".into() }
    }
}

impl RedisConfig {
    /// The host and port of `address`; IPv6 hosts are written in brackets (`[::1]:6379`).
    pub fn host_and_port(&self) -> Result<(String, u16), String> {
        let (host, port) = self.address.rsplit_once(':').ok_or("is not host:port")?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = port.parse::<u16>().map_err(|_| format!("{port:?} is not a port"))?;
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || "/@[]".contains(c)) {
            return Err(format!("{host:?} is not a host"));
        }
        Ok((host.to_owned(), port))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub tokens: u32,
    pub interval: GoDuration,
}

impl RateLimit {
    pub fn fixed_window(&self) -> crate::rate_limit::FixedWindow {
        let interval_ms = i64::try_from(self.interval.as_duration().as_millis()).unwrap_or(i64::MAX);
        crate::rate_limit::FixedWindow { limit: self.tokens, interval_ms }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `gatehouse=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// One thing wrong with a configuration, named by its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigIssue {
    pub key: &'static str,
    pub message: String,
}

pub const MIN_SECRET_KEY_LEN: usize = 16;

/// Open files kept free of connections: database connections, log files, the listeners themselves.
const RESERVED_OPEN_FILES: u64 = 64;

impl Config {
    /// The connection cap of each listener: `server.max_connections`, or else an even share of the open files
    /// left after the database's and a reserve, so that a flood of connections is refused before the process
    /// runs out of file descriptors (which would stop every listener accepting).
    pub fn max_connections_per_listener(&self, open_files_limit: u64) -> u32 {
        if let Some(max) = self.server.max_connections {
            return max;
        }
        // A SQLite connection holds up to three files (database, -wal, -shm).
        let database = 3 * u64::from(self.database.max_connections);
        let listeners = if self.server.admin.enabled { 2 } else { 1 };
        let share = open_files_limit.saturating_sub(RESERVED_OPEN_FILES + database) / listeners;
        u32::try_from(share).unwrap_or(u32::MAX).max(1)
    }

    /// `secret_keys` followed by v2's `secrets.keys`; the first one encrypts.
    pub fn all_secret_keys(&self) -> Vec<Secret> {
        self.secret_keys.iter().chain(&self.secrets.keys).cloned().collect()
    }

    /// Every problem in the configuration, each naming its key. Empty means valid.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &'static str, message: String| issues.push(ConfigIssue { key, message });

        let admin = &self.server.admin;
        if admin.enabled && admin.address.parse::<SocketAddr>().is_err() {
            issue("server.admin.address", format!("{:?} is not an address like 127.0.0.1:8001", admin.address));
        }
        for key in &admin.api_keys {
            if let Err(message) = check_admin_key(key.expose()) {
                issue("server.admin.api_keys", message);
            }
        }
        let timeouts = [
            ("server.timeouts.read_header", self.server.timeouts.read_header),
            ("server.timeouts.request", self.server.timeouts.request),
        ];
        for (key, timeout) in timeouts {
            if timeout.as_duration().is_zero() {
                issue(key, "must be more than 0".into());
            }
        }
        if self.server.max_connections == Some(0) {
            issue("server.max_connections", "must be at least 1".into());
        }
        for host in &admin.allowed_hosts {
            if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
                issue("server.admin.allowed_hosts", format!("{host:?} is not a host name"));
            }
        }
        if self.server.settings_poll_interval.as_duration().is_zero() {
            issue("server.settings_poll_interval", "must be more than 0".into());
        }
        if self.server.public.address.parse::<SocketAddr>().is_err() {
            issue(
                "server.public.address",
                format!("{:?} is not an address like 127.0.0.1:8000", self.server.public.address),
            );
        }
        // A plain-http provider can only be a fake on this machine (the demo's, a test's), which signs anyone in:
        // it may serve only a Gatehouse that nobody else can reach.
        if let Ok(address) = self.server.public.address.parse::<SocketAddr>()
            && !address.ip().is_loopback()
            && url::Url::parse(&self.third_party.providers.microsoft.cloud_instance)
                .is_ok_and(|url| url.scheme() == "http")
        {
            issue(
                "third_party.providers.microsoft.cloud_instance",
                "plain http (a fake provider on this machine) is allowed only while server.public.address is on \
                 loopback"
                    .into(),
            );
        }
        for network in &self.server.public.trusted_proxies {
            if let Err(error) = network.parse::<crate::client_address::TrustedNetwork>() {
                issue("server.public.trusted_proxies", error.to_string());
            }
        }
        for origin in &self.server.public.cors.allow_origins {
            if let Err(message) = crate::origin::OriginPattern::parse(origin) {
                issue("server.public.cors.allow_origins", format!("{origin:?}: {message}"));
            }
        }
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            issue("database.url", "must start with sqlite:// or postgres://".into());
        }
        if self.database.max_connections == 0 {
            issue("database.max_connections", "must be at least 1".into());
        }
        let keys = self.all_secret_keys();
        if keys.is_empty() {
            issue("secret_keys", "at least one key is required (16 characters or more)".into());
        }
        if keys.iter().any(|key| key.expose().chars().count() < MIN_SECRET_KEY_LEN) {
            issue("secret_keys", format!("every key must be at least {MIN_SECRET_KEY_LEN} characters long"));
        }

        let session = &self.session;
        if session.lifespan.as_secs() < 60 {
            issue("session.lifespan", "must be at least 1m".into());
        }
        if session.limit == 0 {
            issue("session.limit", "must be at least 1".into());
        }
        if session.audience.is_empty() || session.audience.iter().any(String::is_empty) {
            issue("session.audience", "needs at least one non-empty audience".into());
        }
        let cookie = &session.cookie;
        if cookie.name.is_empty() || !cookie.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            issue("session.cookie.name", "must be non-empty and use only letters, digits, '-', '_' or '.'".into());
        }
        if let Some(domain) = &cookie.domain
            && (domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == ';' || c == ','))
        {
            issue("session.cookie.domain", format!("{domain:?} is not a cookie domain"));
        }
        if cookie.same_site == SameSite::None && !cookie.secure {
            issue(
                "session.cookie.same_site",
                "\"none\" requires session.cookie.secure: true (browsers drop it otherwise)".into(),
            );
        }

        if self.email.limit == 0 {
            issue("email.limit", "must be at least 1".into());
        }
        let limits = &self.rate_limiter;
        for (tokens_key, interval_key, limit) in [
            ("rate_limiter.token_limits.tokens", "rate_limiter.token_limits.interval", &limits.token_limits),
            ("rate_limiter.flow_limits.tokens", "rate_limiter.flow_limits.interval", &limits.flow_limits),
            ("rate_limiter.callback_limits.tokens", "rate_limiter.callback_limits.interval", &limits.callback_limits),
        ] {
            if limit.tokens == 0 {
                issue(tokens_key, "must be at least 1".into());
            }
            if limit.interval.as_secs() == 0 {
                issue(interval_key, "must be at least 1s".into());
            }
        }
        if self.rate_limiter.enabled
            && self.rate_limiter.store == RateLimitStore::Redis
            && let Err(message) = self.rate_limiter.redis_config.host_and_port()
        {
            issue(
                "rate_limiter.redis_config.address",
                format!("{:?} {message}", self.rate_limiter.redis_config.address),
            );
        }
        if let Err(message) = check_log_level(&self.log.level) {
            issue("log.level", message);
        }
        if self.audit_log.retention.as_secs() < 3600 {
            issue("audit_log.retention", "must be at least 1h".into());
        }
        if let Err(found) = self.session.claims_plan() {
            issues.extend(found);
        }
        issues.extend(self.third_party.validate());
        issues
    }
}

impl ThirdPartyConfig {
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &'static str, message: String| issues.push(ConfigIssue { key, message });
        let urls = [
            ("third_party.redirect_url", &self.redirect_url),
            ("third_party.error_redirect_url", &self.error_redirect_url),
            ("third_party.default_redirect_url", &self.default_redirect_url),
        ];
        for (key, value) in urls {
            if let Some(value) = value
                && let Err(message) = check_absolute_url(value)
            {
                issue(key, message);
            }
        }
        for pattern in &self.allowed_redirect_urls {
            if let Err(error) = crate::redirect::RedirectPattern::parse(pattern) {
                issue("third_party.allowed_redirect_urls", format!("{pattern:?}: {error}"));
            }
        }
        if self.connect_timeout.as_duration().is_zero() {
            issue("third_party.connect_timeout", "must be more than 0".into());
        }
        if self.request_timeout.as_duration().is_zero() {
            issue("third_party.request_timeout", "must be more than 0".into());
        }
        let microsoft = &self.providers.microsoft;
        if microsoft.enabled {
            if self.redirect_url.is_none() {
                issue("third_party.redirect_url", "required when a provider is enabled".into());
            }
            if self.error_redirect_url.is_none() {
                issue("third_party.error_redirect_url", "required when a provider is enabled".into());
            }
            if self.allowed_redirect_urls.is_empty() {
                issue(
                    "third_party.allowed_redirect_urls",
                    "at least one is required when a provider is enabled".into(),
                );
            }
            if microsoft.client_id.as_deref().is_none_or(|id| id.trim().is_empty()) {
                issue("third_party.providers.microsoft.client_id", "required when the provider is enabled".into());
            }
            if microsoft.client_secrets().is_empty() && microsoft.client_certificates().is_empty() {
                issue(
                    "third_party.providers.microsoft.secret",
                    "required when the provider is enabled (or configure a certificate)".into(),
                );
            }
        }
        if let Err(message) = crate::microsoft::claims::TenantMode::parse(&microsoft.tenant).map(drop) {
            issue("third_party.providers.microsoft.tenant", message.to_string());
        }
        for certificate in microsoft.client_certificates() {
            for (key, message) in certificate.issues() {
                issue(key, message.to_owned());
            }
        }
        for secret in &microsoft.secrets {
            if secret.value.expose().is_empty() {
                issue("third_party.providers.microsoft.secrets", "a secret's value must not be empty".into());
            }
            if let Some(Err(message)) = secret.expires_at.as_deref().map(parse_expiry) {
                issue("third_party.providers.microsoft.secrets", format!("expires_at: {message}"));
            }
        }
        if let Err(message) = check_cloud_instance(&microsoft.cloud_instance) {
            issue("third_party.providers.microsoft.cloud_instance", message);
        }
        if let Err(error) = crate::microsoft::directory::GroupFilter::parse(&microsoft.groups.keep) {
            issue("third_party.providers.microsoft.groups.keep", error.to_string());
        }
        if let Some(Err(message)) = microsoft.graph_url.as_deref().map(check_cloud_instance) {
            issue("third_party.providers.microsoft.graph_url", message);
        }
        issues
    }
}

pub(crate) fn check_absolute_url(value: &str) -> Result<(), String> {
    if value.ends_with('/') {
        return Err(format!("{value:?} must not end with a slash"));
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(()),
        _ => Err(format!("{value:?} is not an absolute http(s) URL")),
    }
}

fn check_admin_key(key: &str) -> Result<(), String> {
    match key.strip_prefix(ADMIN_KEY_HASH_PREFIX) {
        Some(hash) if hash.len() == 43 && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            Ok(())
        }
        Some(_) => Err("a hash must be sha256: followed by 43 base64url characters (gatehouse admin-key hash)".into()),
        None if key.chars().count() >= MIN_ADMIN_KEY_LEN => Ok(()),
        None => Err(format!("a key must be at least {MIN_ADMIN_KEY_LEN} characters (gatehouse admin-key new)")),
    }
}

/// `log.level`: a level, or comma-separated `module=level` directives with an optional bare default level. Checked
/// here because the logger, given a filter it cannot read, would quietly log nothing at all.
fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in filter.split(',').map(str::trim) {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        let target_ok = target.is_none_or(|target| {
            !target.is_empty() && target.chars().all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c))
        });
        if !target_ok || !LEVELS.iter().any(|known| known.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "{directive:?} is not a log level: use trace, debug, info, warn, error or off (or per module, as in \
                 gatehouse=debug,info)"
            ));
        }
    }
    Ok(())
}

/// The provider base URL must be https; plain http is only for a fake provider on this machine.
pub(crate) fn check_cloud_instance(value: &str) -> Result<(), String> {
    check_absolute_url(value)?;
    let url = url::Url::parse(value).map_err(|error| error.to_string())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "https" || loopback {
        Ok(())
    } else {
        Err(format!("{value:?} must use https (plain http is allowed only on a loopback host)"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Config {
        Config { secret_keys: vec![Secret::new("0123456789abcdef")], ..Config::default() }
    }

    fn keys(config: &Config) -> Vec<&'static str> {
        config.validate().into_iter().map(|issue| issue.key).collect()
    }

    #[test]
    fn defaults_with_a_key_are_valid() {
        assert_eq!(valid().validate(), vec![]);
    }

    #[test]
    fn missing_or_short_secret_key_is_named() {
        assert_eq!(keys(&Config::default()), vec!["secret_keys"]);
        let short = Config { secret_keys: vec![Secret::new("short")], ..Config::default() };
        assert_eq!(keys(&short), vec!["secret_keys"]);
    }

    #[test]
    fn v2_secrets_keys_count() {
        let config =
            Config { secrets: SecretsConfig { keys: vec![Secret::new("0123456789abcdef")] }, ..Config::default() };
        assert_eq!(config.validate(), vec![]);
    }

    #[test]
    fn enabled_provider_needs_its_settings() {
        let mut config = valid();
        config.third_party.providers.microsoft.enabled = true;
        assert_eq!(
            keys(&config),
            vec![
                "third_party.redirect_url",
                "third_party.error_redirect_url",
                "third_party.allowed_redirect_urls",
                "third_party.providers.microsoft.client_id",
                "third_party.providers.microsoft.secret",
            ]
        );
    }

    #[test]
    fn urls_must_not_end_with_a_slash() {
        let mut config = valid();
        config.third_party.error_redirect_url = Some("https://app.example.com/".into());
        assert_eq!(keys(&config), vec!["third_party.error_redirect_url"]);
    }

    #[test]
    fn direct_redirect_url_is_the_listeners_callback() {
        let on =
            |address: &str| PublicServerConfig { address: address.into(), ..Default::default() }.direct_redirect_url();
        assert_eq!(on("127.0.0.1:8000").as_deref(), Some("http://127.0.0.1:8000/thirdparty/callback"));
        assert_eq!(on("0.0.0.0:8080").as_deref(), Some("http://127.0.0.1:8080/thirdparty/callback"));
        assert_eq!(on("[::]:8000").as_deref(), Some("http://[::1]:8000/thirdparty/callback"));
        assert_eq!(on("127.0.0.1:0"), None, "no port yet");
        assert_eq!(on("localhost:8000"), None, "not an address");
    }

    #[test]
    fn cloud_instance_http_only_on_loopback() {
        let mut config = valid();
        config.third_party.providers.microsoft.cloud_instance = "http://127.0.0.1:9999".into();
        assert_eq!(config.validate(), vec![]);
        config.third_party.providers.microsoft.cloud_instance = "http://login.example.com".into();
        assert_eq!(keys(&config), vec!["third_party.providers.microsoft.cloud_instance"]);
        // The fake on loopback serves only a Gatehouse on loopback, so nobody else can be signed in by it.
        config.third_party.providers.microsoft.cloud_instance = "HTTP://127.0.0.1:9999".into();
        config.server.public.address = "0.0.0.0:8000".into();
        assert_eq!(keys(&config), vec!["third_party.providers.microsoft.cloud_instance"]);
        config.third_party.providers.microsoft.cloud_instance = "https://login.microsoftonline.com".into();
        assert_eq!(config.validate(), vec![]);
    }

    #[test]
    fn client_secrets_rotate_by_expiry() {
        let mut microsoft = MicrosoftProviderConfig {
            secret: Some(Secret::new("newest-secret")),
            secrets: vec![
                ClientSecretConfig { value: Secret::new("older-secret-a"), expires_at: Some("2027-01-31".into()) },
                ClientSecretConfig {
                    value: Secret::new("oldest-secret"),
                    expires_at: Some("2026-01-01T00:00:00Z".into()),
                },
            ],
            ..MicrosoftProviderConfig::default()
        };
        let secrets = microsoft.client_secrets();
        let now = parse_expiry("2026-06-01T00:00:00Z").unwrap();
        let usable: Vec<&str> = usable_secrets(&secrets, now).iter().map(|s| s.value.expose()).collect();
        assert_eq!(usable, vec!["newest-secret", "older-secret-a"], "newest first, expired left out");
        let expiring: Vec<String> = expiring_secrets(&secrets, now, std::time::Duration::from_secs(300 * 86_400))
            .iter()
            .map(|s| s.hint())
            .collect();
        assert_eq!(expiring, vec!["…et-a".to_owned(), "…cret".to_owned()]);
        assert_eq!(parse_expiry("2027-01-31").unwrap(), parse_expiry("2027-01-31T23:59:59Z").unwrap());
        assert!(parse_expiry("31/01/2027").is_err());
        microsoft.secret = None;
        microsoft.secrets[0].expires_at = Some("soon".into());
        let mut config = valid();
        config.third_party.providers.microsoft = microsoft;
        assert_eq!(keys(&config), vec!["third_party.providers.microsoft.secrets"]);
    }

    #[test]
    fn cookie_rules() {
        let mut config = valid();
        config.session.cookie.same_site = SameSite::None;
        config.session.cookie.secure = false;
        config.session.cookie.name = "bad name".into();
        assert_eq!(keys(&config), vec!["session.cookie.name", "session.cookie.same_site"]);
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let mut config = valid();
        config.server.public.cors.allow_origins =
            vec!["https://app.example.com".into(), "https://app.example.com/path".into()];
        assert_eq!(keys(&config), vec!["server.public.cors.allow_origins"]);
    }

    #[test]
    fn admin_key_names_are_one_short_printable_line() {
        assert_eq!(check_admin_key_name("ops laptop"), Ok(()));
        assert_eq!(check_admin_key_name(&"é".repeat(MAX_ADMIN_KEY_NAME_CHARS)), Ok(()));
        for bad in ["", "   ", "ops\nadmin key forged", "tab\there", "\u{1b}[31mred", &"x".repeat(65)] {
            assert!(check_admin_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn admin_listener_answers_only_its_own_hosts() {
        let mut admin = AdminServerConfig::default();
        let loopback: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        for host in ["127.0.0.1:8001", "localhost:8001", "LOCALHOST:8001", "[::1]:8001"] {
            assert!(admin.allows_host(host, loopback), "{host}");
        }
        for host in ["evil.example:8001", "evil.example", "127.0.0.1:8002", "localhost", "10.0.0.5:8001", ""] {
            assert!(!admin.allows_host(host, loopback), "{host}");
        }
        let private: SocketAddr = "10.0.0.5:8001".parse().unwrap();
        assert!(admin.allows_host("10.0.0.5:8001", private) && !admin.allows_host("localhost:8001", private));
        admin.allowed_hosts = vec!["admin.internal".into(), "console.internal:443".into()];
        assert!(admin.allows_host("admin.internal:8443", private) && admin.allows_host("Admin.Internal", private));
        assert!(admin.allows_host("console.internal:443", private) && !admin.allows_host("console.internal", private));
    }

    #[test]
    fn server_limits_are_checked() {
        let mut config = valid();
        config.server.timeouts.read_header = GoDuration::from_secs(0);
        config.server.max_connections = Some(0);
        config.server.admin.allowed_hosts = vec!["admin.internal".into(), "bad host".into()];
        assert_eq!(
            keys(&config),
            vec!["server.timeouts.read_header", "server.max_connections", "server.admin.allowed_hosts"]
        );
    }

    #[test]
    fn connection_cap_shares_the_open_files() {
        let mut config = valid();
        assert_eq!(config.max_connections_per_listener(1024), (1024 - 64 - 30) / 2);
        assert_eq!(config.max_connections_per_listener(10), 1, "never 0");
        config.server.admin.enabled = false;
        assert_eq!(config.max_connections_per_listener(1024), 1024 - 64 - 30);
        config.server.max_connections = Some(7);
        assert_eq!(config.max_connections_per_listener(1024), 7);
    }

    #[test]
    fn trusted_proxies_must_be_networks() {
        let mut config = valid();
        config.server.public.trusted_proxies = vec!["10.0.0.0/8".into(), "fd00::/8".into(), "192.0.2.7".into()];
        assert_eq!(config.validate(), vec![]);
        config.server.public.trusted_proxies = vec!["10.0.0.0/8".into(), "10.0.0.1/8".into(), "proxy".into()];
        let issues = config.validate();
        assert_eq!(keys(&config), vec!["server.public.trusted_proxies", "server.public.trusted_proxies"]);
        assert!(issues[0].to_string().starts_with("server.public.trusted_proxies: \"10.0.0.1/8\" has bits set"));
    }

    #[test]
    fn the_redis_store_needs_an_address() {
        let mut config = valid();
        config.rate_limiter.store = RateLimitStore::Redis;
        assert_eq!(config.validate(), vec![]);
        for good in ["redis.internal:6379", "[::1]:6379"] {
            config.rate_limiter.redis_config.address = good.into();
            assert_eq!(config.validate(), vec![], "{good}");
        }
        for bad in ["redis.internal", "redis://redis.internal:6379", ":6379", "host:99999"] {
            config.rate_limiter.redis_config.address = bad.into();
            assert_eq!(keys(&config), vec!["rate_limiter.redis_config.address"], "{bad}");
        }
        let store: RateLimiterConfig = serde_json::from_str(r#"{"store":"memory"}"#).unwrap();
        assert_eq!(store.store, RateLimitStore::InMemory, "the short name is accepted");
        let store: RateLimiterConfig = serde_json::from_str(r#"{"store":"in_memory"}"#).unwrap();
        assert_eq!(store.store, RateLimitStore::InMemory, "Hanko's name");
    }

    #[test]
    fn log_levels_are_tracing_filters() {
        let mut config = valid();
        for good in ["info", "WARN", "gatehouse=debug,info", "gatehouse_api::flow=trace, warn", "off"] {
            config.log.level = good.into();
            assert_eq!(config.validate(), vec![], "{good}");
        }
        for bad in ["verbose", "", "info,", "=debug", "gatehouse=loud", "a b=info"] {
            config.log.level = bad.into();
            assert_eq!(keys(&config), vec!["log.level"], "{bad}");
        }
    }

    fn session_with(claims: Value) -> SessionConfig {
        serde_json::from_value(claims).unwrap()
    }

    fn messages(session: &SessionConfig) -> Vec<String> {
        session.claims_plan().unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_claims_plan_puts_declared_claims_and_the_template_in_the_token() {
        use crate::{ids::UserId, jwt_template::TemplateInput};
        let session = session_with(json!({
            "custom_claims": {
                "department": {"type": "string", "id_token": "department"},
                "employee_type": {"type": "string", "graph": "employeeType"},
                "plan": {"type": "string", "per_tenant": {"72f988bf-86f1-41af-91ab-2d7cd011db47": "gold", "*": "free"}},
            },
            "jwt_template": {"claims": {"app": {"dept": "{{.Claims.department}}", "user": "{{.User.UserID}}"}}},
            "max_jwt_bytes": 4096,
        }));
        let plan = session.claims_plan().unwrap();
        assert_eq!(plan.max_jwt_bytes, 4096);
        assert_eq!(crate::custom_claims::graph_attributes(&plan.custom_claims), vec!["employeeType"]);
        let custom = [("department".to_owned(), json!("Sales")), ("undeclared".to_owned(), json!("dropped"))]
            .into_iter()
            .collect();
        let input = TemplateInput {
            user_id: UserId::from_uuid(uuid::Uuid::from_u128(1)),
            email: None,
            tenant_id: None,
            tenant_name: None,
            roles: &[],
            groups: &[],
            custom: &custom,
        };
        assert_eq!(
            Value::Object(plan.claims(&input)),
            json!({
                "department": "Sales",
                "app": {"dept": "Sales", "user": "00000000-0000-0000-0000-000000000001"},
            })
        );
        assert_eq!(plan.check_size(&"x".repeat(4096)), Ok(()));
        let refused = plan.check_size(&"x".repeat(4097)).unwrap_err();
        assert_eq!(refused, crate::jwt_template::JwtTooLarge { size: 4097, max: 4096 });
        assert!(
            refused.to_string().starts_with("the session JWT would be 4097 bytes, more than session.max_jwt_bytes")
        );
    }

    #[test]
    fn the_jwt_size_cap_has_bounds() {
        let mut config = valid();
        for good in [1024, 8192, 65_536] {
            config.session.max_jwt_bytes = good;
            assert_eq!(config.validate(), vec![], "{good}");
        }
        for bad in [0, 1023, 65_537] {
            config.session.max_jwt_bytes = bad;
            assert_eq!(
                config.validate().iter().map(ToString::to_string).collect::<Vec<_>>(),
                vec!["session.max_jwt_bytes: must be between 1024 and 65536 bytes"],
                "{bad}"
            );
        }
    }

    #[test]
    fn claim_issues_name_their_key_and_path() {
        let session = session_with(json!({
            "custom_claims": {
                "plan": {"type": "number", "per_tenant": {"acme": 1}},
                "sub": {"type": "string", "id_token": "x"},
            },
            "jwt_template": {"claims": {"app": {"dept": "{{if .User.Email}}x{{end}}"}, "plan": 1, "tier": "{{.Claims.tier}}"}},
        }));
        assert_eq!(
            messages(&session),
            vec![
                "session.custom_claims: plan: per_tenant: \"acme\" is not a tenant GUID or *",
                "session.custom_claims: sub: is set by Gatehouse and cannot be declared",
                "session.jwt_template.claims: app.dept: only field placeholders like {{.User.Email.Address}} are \
                 supported; {{if …}} is not",
                "session.jwt_template.claims: plan: is a declared custom claim (session.custom_claims), which \
                 Gatehouse puts in the token under its own name; use {{.Claims.<name>}} under another name to repeat \
                 it",
                "session.jwt_template.claims: tier: {{.Claims.tier}}: \"tier\" is not a declared custom claim \
                 (declare it under session.custom_claims)",
            ]
        );
        let mut config = valid();
        config.session = session;
        assert_eq!(
            keys(&config),
            vec![
                "session.custom_claims",
                "session.custom_claims",
                "session.jwt_template.claims",
                "session.jwt_template.claims",
                "session.jwt_template.claims"
            ]
        );
    }

    #[test]
    fn hankos_documented_template_is_read_except_its_conditional() {
        // The example in Hanko's config_session.go.
        let session = session_with(json!({"jwt_template": {"claims": {
            "role": "user",
            "user_email": "{{.User.Email.Address}}",
            "is_verified": "{{.User.Email.IsVerified}}",
            "metadata": {"source": "hanko", "greeting": "Hello {{.User.Username}}"},
            "scopes": ["read", "write", "{{if .User.Email.IsVerified}}admin{{else}}basic{{end}}"],
        }}}));
        assert_eq!(
            messages(&session),
            vec![
                "session.jwt_template.claims: scopes[2]: only field placeholders like {{.User.Email.Address}} are \
                 supported; {{if …}} is not"
            ]
        );
    }

    #[test]
    fn custom_claim_declarations_refuse_unknown_keys_and_types() {
        let read = |value| serde_json::from_value::<CustomClaimConfig>(value).map_err(|error| error.to_string());
        assert!(read(json!({"type": "string", "id_token": "x"})).is_ok());
        assert!(read(json!({"type": "string", "source": "x"})).unwrap_err().contains("unknown field"));
        assert!(read(json!({"type": "integer", "id_token": "x"})).unwrap_err().contains("unknown variant"));
        assert!(read(json!({"id_token": "x"})).unwrap_err().contains("missing field `type`"));
    }

    #[test]
    fn a_database_password_prints_redacted_and_readable() {
        let url = DatabaseUrl::new("postgres://gate:hunter2@db.internal:5432/gatehouse");
        assert_eq!(url.redacted(), "postgres://gate:<redacted>@db.internal:5432/gatehouse");
        assert_eq!(DatabaseUrl::new("sqlite://gatehouse.db").redacted(), "sqlite://gatehouse.db");
    }

    #[test]
    fn secrets_never_serialise() {
        let mut config = valid();
        config.database.url = DatabaseUrl::new("postgres://gate:hunter2@db.internal/gatehouse");
        config.third_party.providers.microsoft.secret = Some(Secret::new("client-secret-value"));
        config.rate_limiter.redis_config.password = Some(Secret::new("redis-password-value"));
        let text = serde_json::to_string(&config).unwrap();
        assert!(
            !text.contains("hunter2")
                && !text.contains("client-secret-value")
                && !text.contains("redis-password-value")
                && !text.contains("0123456789abcdef")
        );
        assert!(text.contains("<redacted>"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
