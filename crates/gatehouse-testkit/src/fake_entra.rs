//! A fake Microsoft Entra ID (v2.0 endpoints) on loopback, so integration tests can run the whole
//! authorization-code flow of "Sign in with Microsoft" with real RS256 keys while Microsoft is unreachable.
//!
//! It behaves like `login.microsoftonline.com` where our client can tell: the same paths under a tenant segment
//! (`common`, `organizations`, `consumers`, a tenant GUID), JWKS entries without `alg` but with Microsoft's
//! `issuer` property (the `{tenantid}` template), issuers built from `tid`, Microsoft-shaped error answers
//! (`AADSTS…` descriptions, `error_codes`), refusals it shows as an HTML page instead of redirecting, single-use
//! codes that expire after ten minutes, and PKCE. Consent is automatic: every authorize request signs in the next
//! queued [`FakeUser`] (or the default one, which may be a new person every time: [`FakeEntra::set_user_factory`]).
//!
//! Tests steer it through [`FakeEntra`]'s methods: queue users, inject errors and delays, rotate keys, and break
//! the next ID token in one of the ways an attacker or a misbehaving IdP would ([`IdTokenTweak`]).
//!
//! It deliberately does not enforce that a user's `tid` fits the tenant segment of the request (a `consumers`
//! request may sign in an organisation user): tests need exactly those mismatches to check that Gatehouse
//! refuses them.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use gatehouse_core::config::SigningAlgorithm;
use gatehouse_crypto::{digest, random, signing};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{AlgorithmParameters, Jwk},
};
use serde_json::{Map, Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use url::{Url, form_urlencoded};
use uuid::Uuid;

use crate::FaultProxy;

/// The tenant of [`FakeUser::new`]: an organisation (work or school) tenant.
pub const FAKE_ORG_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The tenant of every personal Microsoft account (MSA), and the fixed issuer of the `consumers` metadata.
pub const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// How long an authorization code can be redeemed; Microsoft's codes live about ten minutes.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Codes are kept after use or expiry so a replay gets the right error; past this many, old ones are dropped.
const MAX_KEPT_CODES: usize = 10_000;

/// How the fake is registered: the one application it knows.
#[derive(Clone, Debug)]
pub struct FakeEntraOptions {
    /// The application (client) id.
    pub client_id: String,
    /// Valid client secrets; any of them authenticates (Entra allows several at once for rollover).
    pub client_secrets: Vec<String>,
    /// Registered redirect URIs, matched exactly. Empty accepts any absolute URI.
    pub redirect_uris: Vec<String>,
    /// Uploaded certificates: client assertions signed with their keys authenticate the client.
    pub certificates: Vec<FakeCertificate>,
}

/// A certificate uploaded to the app registration, as the fake needs it: its SHA-256 thumbprint (`x5t#S256`)
/// and its public key.
#[derive(Clone, Debug)]
pub struct FakeCertificate {
    pub thumbprint_sha256: String,
    n: String,
    e: String,
}

impl FakeCertificate {
    /// Registers the certificate of `private_key_pem` under `thumbprint_sha256` (the fake keeps only the public
    /// half).
    pub fn new(thumbprint_sha256: &str, private_key_pem: &str) -> Self {
        let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).expect("an RSA private key in PEM");
        let jwk = serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::PS256).expect("jwk")).expect("jwk json");
        let field = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        Self { thumbprint_sha256: thumbprint_sha256.to_owned(), n: field("n"), e: field("e") }
    }
}

impl Default for FakeEntraOptions {
    fn default() -> Self {
        Self {
            client_id: "c0ffee00-1111-4222-8333-444455556666".into(),
            client_secrets: vec!["fake~client.secret_0123456789".into()],
            redirect_uris: Vec::new(),
            certificates: Vec::new(),
        }
    }
}

/// The person who "signs in" at the authorize endpoint; becomes the claims of the ID token.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeUser {
    /// Pairwise subject: Microsoft's is a 43-character base64url string, different per application.
    pub sub: String,
    /// Tenant GUID; the token's `iss` is built from it.
    pub tid: String,
    /// Object id of the user in that tenant: with `tid`, the stable key Microsoft recommends.
    pub oid: String,
    /// Profile claims, each omitted when `None` (`given_name` and `family_name` are optional claims at
    /// Microsoft; tests also need tokens without them).
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    /// `email` claim, omitted when `None`.
    pub email: Option<String>,
    /// `upn` claim, omitted when `None` (as for personal accounts).
    pub upn: Option<String>,
    /// `xms_edov` ("email domain owner verified"), any JSON value because Microsoft sends `true` or `"1"`;
    /// omitted when `None`.
    pub xms_edov: Option<Value>,
    /// App roles assigned to the user: the `roles` claim, omitted when empty.
    pub roles: Vec<String>,
    /// Group object ids: the `groups` claim when there are at most [`GROUP_CLAIM_LIMIT`], else the overage markers
    /// (`_claim_names`, `_claim_sources`) with the groups served by the Graph endpoint only.
    pub groups: Vec<String>,
    /// Profile attributes Graph's `/me` serves besides the ones derived from the claims above.
    pub graph_attributes: Map<String, Value>,
    /// Merged into the ID token last, so they override anything above.
    pub extra_claims: Map<String, Value>,
}

impl FakeUser {
    /// An organisation user of [`FAKE_ORG_TENANT`] with this email (also the `preferred_username`), a random
    /// `sub` and `oid`, no `upn`, and `xms_edov: true`: what an app registration with the optional claims the Azure
    /// guide lists sends for a user of a tenant that verified its domain.
    pub fn new(email: impl Into<String>) -> Self {
        let email = email.into();
        let local = email.split('@').next().unwrap_or_default();
        let mut chars = local.chars();
        let given_name = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => "Test".to_owned(),
        };
        let family_name = "Tester".to_owned();
        Self {
            sub: random::token(),
            tid: FAKE_ORG_TENANT.into(),
            oid: Uuid::new_v4().to_string(),
            name: Some(format!("{given_name} {family_name}")),
            given_name: Some(given_name),
            family_name: Some(family_name),
            preferred_username: Some(email.clone()),
            email: Some(email),
            upn: None,
            xms_edov: Some(Value::Bool(true)),
            roles: Vec::new(),
            groups: Vec::new(),
            graph_attributes: Map::new(),
            extra_claims: Map::new(),
        }
    }

    /// [`FakeUser::new`], but with `sub` and `oid` derived from the email rather than random: Microsoft keeps a
    /// person's ids for ever, so a restarted fake (the demo's) must too, or their next sign-in would be a new
    /// identity claiming a taken address (`user_conflict`).
    pub fn stable(email: impl Into<String>) -> Self {
        let mut user = Self::new(email);
        let email = user.email.clone().unwrap_or_default();
        user.sub = digest::sha256_base64url(format!("fake-entra sub {email}").as_bytes());
        let oid = digest::sha256(format!("fake-entra oid {email}").as_bytes());
        let mut oid_bytes = [0u8; 16];
        oid_bytes.copy_from_slice(&oid[..16]);
        user.oid = uuid::Builder::from_custom_bytes(oid_bytes).into_uuid().to_string();
        user
    }

    /// The same user in another tenant (e.g. [`CONSUMER_TENANT`] for a personal account).
    pub fn in_tenant(mut self, tid: impl Into<String>) -> Self {
        self.tid = tid.into();
        self
    }

    /// Neither `upn` nor `xms_edov`: an app registration without those optional claims, or an attacker's own
    /// tenant vouching for an address it does not own. Only a personal account's address is proven this way.
    pub fn without_proof(mut self) -> Self {
        self.upn = None;
        self.xms_edov = None;
        self
    }

    pub fn with_upn(mut self, upn: impl Into<String>) -> Self {
        self.upn = Some(upn.into());
        self
    }

    pub fn with_xms_edov(mut self, value: impl Into<Value>) -> Self {
        self.xms_edov = Some(value.into());
        self
    }

    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra_claims.insert(name.into(), value.into());
        self
    }

    pub fn with_roles<S: Into<String>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Member of these groups; more than [`GROUP_CLAIM_LIMIT`] makes every token an overage.
    pub fn with_groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_graph_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.graph_attributes.insert(name.into(), value.into());
        self
    }
}

/// Most groups Microsoft puts in a JWT's `groups` claim; beyond it the token says "overage" instead.
pub const GROUP_CLAIM_LIMIT: usize = 200;
/// Groups per page of Graph's membership list when the request has no `$top` (Graph's own default).
pub const GRAPH_DEFAULT_PAGE_SIZE: usize = 100;
/// The largest `$top` Graph honours for directory objects.
pub const GRAPH_MAX_PAGE_SIZE: usize = 999;

/// A defect to build into the next ID token, for negative tests. Several may be queued for the same token; the
/// claim changes apply in order, and of the header/signature changes the last one wins.
#[derive(Clone, Debug, PartialEq)]
pub enum IdTokenTweak {
    /// `alg: none` and an empty signature.
    AlgNone,
    /// HS256 keyed with the bytes of the current key's published JWK (JSON): the algorithm-confusion attack.
    Hs256WithPublicKey,
    /// Signed by the current key but naming a `kid` the JWKS does not have.
    UnknownKid,
    /// Names the current `kid` but is signed by a key that is not published.
    SignedByForeignKey,
    /// No `kid` in the header.
    NoKid,
    /// Issued two hours ago, expired one hour ago.
    Expired,
    /// `iat` and `nbf` ten minutes in the future.
    NotYetValid,
    /// `aud` is another application.
    WrongAudience,
    /// `nonce` differs from the one the authorize request carried (and is present even if none was sent).
    WrongNonce,
    /// Merge these claims.
    Claims(Map<String, Value>),
    /// Remove these claims.
    RemoveClaims(Vec<String>),
}

/// How a token request authenticated the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret.
    Basic,
    /// `client_secret_post`: `client_secret` in the form body.
    Post,
    /// `private_key_jwt`: a client assertion signed with a registered certificate's key.
    Assertion,
    /// Both at once, which RFC 6749 §2.3 forbids (refused).
    Both,
    /// No secret at all (refused).
    None,
}

/// What the last token request looked like, for tests of the client's behaviour. Recorded for every request
/// whose form and `Authorization` header could be read, including refused ones and injected failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// The tenant segment of the path.
    pub tenant: String,
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_auth: ClientAuth,
    pub redirect_uri: Option<String>,
    pub code_verifier_present: bool,
}

/// A running fake, stopped when the last clone is dropped. Cheap to clone.
#[derive(Clone)]
pub struct FakeEntra {
    inner: Arc<Inner>,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for FakeEntra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeEntra")
            .field("base_url", &self.inner.base_url)
            .field("client_id", &self.inner.options.client_id)
            .finish_non_exhaustive()
    }
}

/// Aborts the server task when the last [`FakeEntra`] handle goes; the router holds only [`Inner`].
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FakeEntra {
    /// Starts on `127.0.0.1` and a free port. Panics if no loopback port can be bound, which no test survives.
    pub async fn start(options: FakeEntraOptions) -> Self {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options)
            .await
            .expect("bind the fake Entra ID to a loopback port")
    }

    /// Starts on a given address (the standalone binary's fixed port).
    pub async fn start_on(addr: SocketAddr, options: FakeEntraOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        Ok(Self::serve(listener, base_url, options))
    }

    /// Starts behind a [`FaultProxy`], which it names as its address (in its endpoints, issuers and key scopes):
    /// everything Gatehouse and the browser ask of it goes through the proxy, where a test breaks the network.
    pub async fn start_behind_proxy(options: FakeEntraOptions) -> (Self, FaultProxy) {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind the fake Entra ID to a loopback port");
        let proxy = FaultProxy::start(listener.local_addr().expect("the fake's address")).await;
        let base_url = format!("http://{}", proxy.address());
        (Self::serve(listener, base_url, options), proxy)
    }

    fn serve(listener: TcpListener, base_url: String, options: FakeEntraOptions) -> Self {
        let key = FakeKey::generate(&template_issuer(&base_url));
        let state = FakeState {
            current_kid: key.kid.clone(),
            keys: vec![key],
            foreign_key: None,
            codes: HashMap::new(),
            queued_users: VecDeque::new(),
            default_user: default_user(FakeUser::new("megan@contoso.com")),
            next_authorize_error: None,
            next_token_failure: None,
            next_token_delay: None,
            jwks_down: false,
            next_tweaks: Vec::new(),
            next_signing_kid: None,
            expired_secrets: HashSet::new(),
            used_assertion_ids: HashSet::new(),
            last_token_request: None,
            last_authorize_query: None,
            access_tokens: HashMap::new(),
            tenant_names: HashMap::from([(FAKE_ORG_TENANT.to_owned(), "Contoso".to_owned())]),
            next_graph_failure: None,
        };
        let inner = Arc::new(Inner {
            base_url,
            options,
            state: Mutex::new(state),
            authorize_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            jwks_requests: AtomicU64::new(0),
            discovery_requests: AtomicU64::new(0),
            graph_requests: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{tenant}/discovery/v2.0/keys", get(jwks))
            .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery))
            .route("/v1.0/me", get(graph_me))
            .route("/v1.0/me/transitiveMemberOf/microsoft.graph.group", get(graph_groups))
            .route("/v1.0/organization", get(graph_organization))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            // Ends only when aborted; a failing accept loop would show up as refused connections in the test.
            let _ = axum::serve(listener, router).await;
        });
        Self { inner, _server: Arc::new(ServerTask(task)) }
    }

    /// `http://127.0.0.1:PORT`: Gatehouse's `cloud_instance`.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    pub fn client_id(&self) -> String {
        self.inner.options.client_id.clone()
    }

    pub fn authorize_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/authorize", self.inner.base_url)
    }

    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.inner.base_url)
    }

    pub fn jwks_uri(&self, tenant: &str) -> String {
        format!("{}/{tenant}/discovery/v2.0/keys", self.inner.base_url)
    }

    pub fn discovery_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.inner.base_url)
    }

    /// The `iss` of tokens for users of tenant `tid`.
    pub fn issuer_for(&self, tid: &str) -> String {
        format!("{}/{tid}/v2.0", self.inner.base_url)
    }

    /// Signs in `user` at the next authorize request; queued users go first-in, first-out.
    pub fn queue_user(&self, user: FakeUser) {
        self.inner.lock().queued_users.push_back(user);
    }

    /// Signs in `user` whenever no user is queued. Initially a user `megan@contoso.com`.
    pub fn set_default_user(&self, user: FakeUser) {
        self.inner.lock().default_user = default_user(user);
    }

    /// Whenever no user is queued, signs in the user `make` returns, called once per authorize request: for
    /// example a new person at every sign-in, as a load test needs. Replaces the default user.
    pub fn set_user_factory(&self, make: impl Fn() -> FakeUser + Send + 'static) {
        self.inner.lock().default_user = Box::new(make);
    }

    /// The next authorize request (whose client and redirect URI are valid) redirects back with this error.
    pub fn fail_next_authorize(&self, error: &str, description: &str) {
        self.inner.lock().next_authorize_error = Some((error.to_owned(), description.to_owned()));
    }

    /// The next token request gets this status and JSON body (after any delay), without being looked at.
    pub fn fail_next_token(&self, status: u16, body: Value) {
        self.inner.lock().next_token_failure = Some((status, body));
    }

    /// The next token request is answered only after `delay`, to test client timeouts.
    pub fn delay_next_token(&self, delay: Duration) {
        self.inner.lock().next_token_delay = Some(delay);
    }

    /// While `down`, the keys endpoint answers 503, as Microsoft's does in an incident that spares sign-ins.
    pub fn set_jwks_down(&self, down: bool) {
        self.inner.lock().jwks_down = down;
    }

    /// From now on `secret` is refused with AADSTS7000222 ("client secret keys are expired").
    pub fn expire_secret(&self, secret: &str) {
        self.inner.lock().expired_secrets.insert(secret.to_owned());
    }

    /// Makes every code issued so far too old to redeem, instead of waiting ten minutes.
    pub fn expire_codes(&self) {
        for code in self.inner.lock().codes.values_mut() {
            code.expired = true;
        }
    }

    /// Builds a defect into the next ID token only (see [`IdTokenTweak`]).
    pub fn tweak_next_id_token(&self, tweak: IdTokenTweak) {
        let mut state = self.inner.lock();
        if tweak == IdTokenTweak::SignedByForeignKey && state.foreign_key.is_none() {
            // Generated here rather than while answering, so a token request never waits for RSA key generation.
            state.foreign_key = Some(FakeKey::generate("unpublished").encoding);
        }
        state.next_tweaks.push(tweak);
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.inner.lock().current_kid.clone()
    }

    /// Publishes a new key and signs with it from now on; the old keys stay published, as during Microsoft's
    /// rollover. Returns the new `kid`.
    pub fn rotate_keys(&self) -> String {
        let key = FakeKey::generate(&template_issuer(&self.inner.base_url));
        let kid = key.kid.clone();
        let mut state = self.inner.lock();
        state.keys.push(key);
        state.current_kid = kid.clone();
        kid
    }

    /// Unpublishes every key but the current one (the end of a rollover).
    pub fn retire_old_keys(&self) {
        let mut state = self.inner.lock();
        let current = state.current_kid.clone();
        state.keys.retain(|key| key.kid == current);
    }

    /// Publishes a key whose JWKS entry carries this fixed `issuer` (Microsoft scopes keys that way: such a key
    /// may sign only for that issuer). It does not become the current key; see [`FakeEntra::sign_next_with`].
    pub fn add_key_with_fixed_issuer(&self, issuer: &str) -> String {
        let key = FakeKey::generate(issuer);
        let kid = key.kid.clone();
        self.inner.lock().keys.push(key);
        kid
    }

    /// Signs the next ID token with the published key `kid`. Panics if no such key is published.
    pub fn sign_next_with(&self, kid: &str) {
        let mut state = self.inner.lock();
        assert!(state.keys.iter().any(|key| key.kid == kid), "sign_next_with: no published key has kid {kid:?}");
        state.next_signing_kid = Some(kid.to_owned());
    }

    /// The JWKS document as served (`{"keys": […]}`).
    pub fn jwks_document(&self) -> Value {
        self.inner.jwks_document()
    }

    pub fn authorize_requests(&self) -> u64 {
        self.inner.authorize_requests.load(Ordering::Relaxed)
    }

    pub fn token_requests(&self) -> u64 {
        self.inner.token_requests.load(Ordering::Relaxed)
    }

    pub fn jwks_requests(&self) -> u64 {
        self.inner.jwks_requests.load(Ordering::Relaxed)
    }

    pub fn discovery_requests(&self) -> u64 {
        self.inner.discovery_requests.load(Ordering::Relaxed)
    }

    pub fn last_token_request(&self) -> Option<TokenRequestRecord> {
        self.inner.lock().last_token_request.clone()
    }

    /// Names the organisation of tenant `tid` in Graph's `/organization`.
    pub fn set_tenant_name(&self, tid: &str, name: &str) {
        self.inner.lock().tenant_names.insert(tid.to_owned(), name.to_owned());
    }

    /// The next Graph request fails with this status and body (Graph's `{"error": {"code", "message"}}` shape).
    pub fn fail_next_graph(&self, status: u16, code: &str) {
        let body = json!({ "error": { "code": code, "message": "injected by the test" } });
        self.inner.lock().next_graph_failure = Some((status, body));
    }

    /// How many Graph requests arrived, refused ones included.
    pub fn graph_requests(&self) -> u64 {
        self.inner.graph_requests.load(Ordering::Relaxed)
    }

    /// The query parameters of the last authorize request, e.g. to check that the client sent `prompt`.
    pub fn last_authorize_query(&self) -> Option<HashMap<String, String>> {
        self.inner.lock().last_authorize_query.clone()
    }
}

/// State shared by the handle and the request handlers.
struct Inner {
    base_url: String,
    options: FakeEntraOptions,
    /// A plain mutex: it is never held across an `.await`.
    state: Mutex<FakeState>,
    authorize_requests: AtomicU64,
    token_requests: AtomicU64,
    jwks_requests: AtomicU64,
    discovery_requests: AtomicU64,
    graph_requests: AtomicU64,
}

/// What an access token the fake issued lets its bearer read from Graph.
#[derive(Clone)]
struct GraphGrant {
    user: FakeUser,
    scope: String,
}

struct FakeState {
    /// Published keys, in the order they were added.
    keys: Vec<FakeKey>,
    current_kid: String,
    foreign_key: Option<EncodingKey>,
    codes: HashMap<String, IssuedCode>,
    queued_users: VecDeque<FakeUser>,
    /// Makes the user an authorize request signs in when none is queued.
    default_user: UserFactory,
    next_authorize_error: Option<(String, String)>,
    next_token_failure: Option<(u16, Value)>,
    next_token_delay: Option<Duration>,
    jwks_down: bool,
    next_tweaks: Vec<IdTokenTweak>,
    next_signing_kid: Option<String>,
    expired_secrets: HashSet<String>,
    /// `jti`s of client assertions already accepted: an assertion works once.
    used_assertion_ids: HashSet<String>,
    last_token_request: Option<TokenRequestRecord>,
    last_authorize_query: Option<HashMap<String, String>>,
    /// Access tokens issued, for the Graph endpoints.
    access_tokens: HashMap<String, GraphGrant>,
    /// Organisation names by tenant id, for Graph's `/organization`.
    tenant_names: HashMap<String, String>,
    next_graph_failure: Option<(u16, Value)>,
}

type UserFactory = Box<dyn Fn() -> FakeUser + Send>;

/// A factory that signs in the same `user` every time.
fn default_user(user: FakeUser) -> UserFactory {
    Box::new(move || user.clone())
}

struct FakeKey {
    kid: String,
    encoding: EncodingKey,
    /// The JWKS entry, shaped like Microsoft's: `kty`, `use`, `kid`, `x5t`, `n`, `e`, `issuer`, and no `alg`.
    jwk: Value,
}

impl FakeKey {
    /// A new RSA-2048 key. Panics if the crypto library cannot make one, which no test could work around.
    fn generate(issuer: &str) -> Self {
        let der = signing::generate_private_key(SigningAlgorithm::RS256).expect("generate an RSA key");
        let encoding = EncodingKey::from_rsa_pem(signing::private_key_pem(&der).as_bytes()).expect("load the RSA key");
        let public = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("derive the public JWK");
        let AlgorithmParameters::RSA(rsa) = public.algorithm else { unreachable!("an RSA key has RSA parameters") };
        // Microsoft's kid is the certificate's SHA-1 thumbprint (x5t): 20 bytes in base64url.
        let kid = URL_SAFE_NO_PAD.encode(random::bytes::<20>());
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "x5t": kid,
            "n": rsa.n,
            "e": rsa.e,
            "issuer": issuer,
        });
        Self { kid, encoding, jwk }
    }
}

/// An authorization code and what it was issued for.
#[derive(Clone)]
struct IssuedCode {
    tenant: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: String,
    user: FakeUser,
    issued_at: Instant,
    expired: bool,
    used: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panicking test thread must not take the fake down for the other tests sharing it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn jwks_document(&self) -> Value {
        json!({ "keys": self.lock().keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Checks a token request and redeems its code. `Ok` is the token response body.
    fn redeem(&self, tenant: &str, params: &Params, credentials: Credentials) -> Result<Value, OAuthError> {
        let audience = format!("{}/{tenant}/oauth2/v2.0/token", self.base_url);
        let Some(tenant) = Tenant::parse(tenant) else {
            return Err(OAuthError::bad_request("invalid_request", 90002, format!("Tenant '{tenant}' not found.")));
        };
        match params.get("grant_type") {
            None => return Err(OAuthError::missing("grant_type")),
            Some("authorization_code") => {}
            Some(other) => {
                return Err(OAuthError::bad_request(
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'."),
                ));
            }
        }
        let client_id = self.authenticate(credentials, &audience)?;

        let Some(code) = params.get("code") else { return Err(OAuthError::missing("code")) };
        let mut state = self.lock();
        let Some(issued) = state.codes.get_mut(code) else {
            return Err(OAuthError::invalid_grant(70000, "The provided value for the 'code' parameter is not valid."));
        };
        if issued.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                70000,
                "The provided value for the 'code' parameter is not valid. The code was issued to a different client.",
            ));
        }
        if issued.used {
            return Err(OAuthError::invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an \
                 existing refresh token.",
            ));
        }
        // Any attempt by the right client burns the code, so a verifier cannot be guessed over several tries.
        issued.used = true;
        if issued.expired || issued.issued_at.elapsed() > CODE_LIFETIME {
            return Err(OAuthError::invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new \
                 interactive authorization request for this user and resource.",
            ));
        }
        if params.get("redirect_uri") != Some(issued.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                500112,
                format!(
                    "The reply address '{}' does not match the reply address '{}' provided when requesting \
                     Authorization code.",
                    params.get("redirect_uri").unwrap_or_default(),
                    issued.redirect_uri
                ),
            ));
        }
        let Some(verifier) = params.get("code_verifier") else {
            return Err(OAuthError::invalid_grant(
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
            ));
        };
        if s256(verifier) != issued.code_challenge {
            return Err(OAuthError::invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        if issued.tenant != tenant.path() {
            return Err(OAuthError::invalid_grant(
                70000,
                format!("The code was issued for tenant '{}', not '{}'.", issued.tenant, tenant.path()),
            ));
        }

        // Released from the map borrow: signing needs the rest of the state.
        let issued = issued.clone();
        let access_token = random::token();
        if state.access_tokens.len() >= MAX_KEPT_CODES {
            state.access_tokens.clear();
        }
        let grant = GraphGrant { user: issued.user.clone(), scope: issued.scope.clone() };
        state.access_tokens.insert(access_token.clone(), grant);
        let mut body = json!({
            "token_type": "Bearer",
            "scope": issued.scope,
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
        });
        // Like Microsoft, an ID token only for an OpenID Connect request.
        if issued.scope.split(' ').any(|scope| scope == "openid") {
            body["id_token"] = Value::String(self.id_token(&mut state, &issued)?);
        }
        Ok(body)
    }

    /// Checks a client assertion as Microsoft does: signed (PS256 or RS256) by a registered certificate named by
    /// `x5t#S256`, for this token endpoint, by and about this client, short-lived, and used once.
    fn verify_assertion(&self, assertion: &str, client_id: &str, audience: &str) -> Result<(), OAuthError> {
        let refuse = |code: u32, message: &str| OAuthError::invalid_client(code, message.to_owned());
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|_| refuse(700024, "Malformed client assertion."))?;
        if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
            return Err(refuse(700027, "Client assertion contains an unsupported algorithm."));
        }
        let thumbprint = header.x5t_s256.unwrap_or_default();
        let Some(certificate) = self.options.certificates.iter().find(|c| c.thumbprint_sha256 == thumbprint) else {
            return Err(refuse(
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on application.",
            ));
        };
        let key = jsonwebtoken::DecodingKey::from_rsa_components(&certificate.n, &certificate.e)
            .map_err(|_| refuse(700027, "Unusable registered certificate."))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[client_id]);
        validation.sub = Some(client_id.to_owned());
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub", "nbf"]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|e| refuse(700027, &format!("Client assertion failed signature or claim validation: {e}")))?
            .claims;
        let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["nbf"].as_i64().unwrap_or(0);
        if lifetime > 600 {
            return Err(refuse(700024, "Client assertion is valid for more than 10 minutes."));
        }
        let Some(jti) = claims["jti"].as_str() else { return Err(refuse(700024, "Client assertion has no jti.")) };
        if !self.lock().used_assertion_ids.insert(jti.to_owned()) {
            return Err(refuse(700024, "Client assertion was already used (jti replay)."));
        }
        Ok(())
    }

    /// Checks the client's credentials; returns its id. `audience` is the token endpoint the request came to.
    fn authenticate(&self, credentials: Credentials, audience: &str) -> Result<String, OAuthError> {
        let Credentials { client_id, secret, method } = credentials;
        let Some(client_id) = client_id else { return Err(OAuthError::missing("client_id")) };
        if client_id != self.options.client_id {
            return Err(OAuthError::bad_request(
                "unauthorized_client",
                700016,
                format!("Application with identifier '{client_id}' was not found in the directory."),
            ));
        }
        let secret = match method {
            ClientAuth::Both => {
                return Err(OAuthError::bad_request(
                    "invalid_request",
                    90014,
                    "The client must authenticate with only one method: HTTP Basic or client_secret in the body.",
                ));
            }
            ClientAuth::None => None,
            ClientAuth::Assertion => {
                let assertion = secret.ok_or_else(|| OAuthError::missing("client_assertion"))?;
                self.verify_assertion(&assertion, &client_id, audience)?;
                return Ok(client_id);
            }
            ClientAuth::Basic | ClientAuth::Post => secret,
        };
        let Some(secret) = secret else {
            return Err(OAuthError::invalid_client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        if !self.options.client_secrets.contains(&secret) {
            return Err(OAuthError::invalid_client(
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
                     value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
        if self.lock().expired_secrets.contains(&secret) {
            return Err(OAuthError::invalid_client(
                7000222,
                format!("The provided client secret keys for app '{client_id}' are expired."),
            ));
        }
        Ok(client_id)
    }

    /// Builds and signs the ID token for a redeemed code, applying (and consuming) the queued tweaks.
    fn id_token(&self, state: &mut FakeState, code: &IssuedCode) -> Result<String, OAuthError> {
        let tweaks = std::mem::take(&mut state.next_tweaks);
        let kid = state.next_signing_kid.take().unwrap_or_else(|| state.current_kid.clone());
        let Some(key) = state.keys.iter().find(|key| key.kid == kid) else {
            return Err(OAuthError::server(format!("The signing key '{kid}' is no longer published.")));
        };

        let now = unix_now();
        let user = &code.user;
        let mut claims = Map::new();
        let mut set = |name: &str, value: Value| {
            claims.insert(name.to_owned(), value);
        };
        set("ver", json!("2.0"));
        set("iss", json!(format!("{}/{}/v2.0", self.base_url, user.tid)));
        set("aud", json!(code.client_id));
        set("sub", json!(user.sub));
        set("tid", json!(user.tid));
        set("oid", json!(user.oid));
        if let Some(nonce) = &code.nonce {
            set("nonce", json!(nonce));
        }
        set("iat", json!(now));
        set("nbf", json!(now));
        set("exp", json!(now + 3600));
        let optional = [
            ("name", &user.name),
            ("given_name", &user.given_name),
            ("family_name", &user.family_name),
            ("preferred_username", &user.preferred_username),
            ("email", &user.email),
            ("upn", &user.upn),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                set(name, json!(value));
            }
        }
        if let Some(edov) = &user.xms_edov {
            set("xms_edov", edov.clone());
        }
        if !user.roles.is_empty() {
            set("roles", json!(user.roles));
        }
        if user.groups.len() > GROUP_CLAIM_LIMIT {
            // Microsoft's overage markers: the claim source names the (retired) Azure AD Graph; clients use
            // Microsoft Graph instead.
            set("_claim_names", json!({ "groups": "src1" }));
            let endpoint = format!("https://graph.windows.net/{}/users/{}/getMemberObjects", user.tid, user.oid);
            set("_claim_sources", json!({ "src1": { "endpoint": endpoint } }));
        } else if !user.groups.is_empty() {
            set("groups", json!(user.groups));
        }
        // Opaque claims every Microsoft token carries; a validator must ignore them.
        set("aio", json!(random::token()));
        set("rh", json!(format!("0.{}.", random::token())));
        set("uti", json!(URL_SAFE_NO_PAD.encode(random::bytes::<16>())));
        claims.extend(user.extra_claims.clone());

        enum Signature {
            Key,
            Foreign,
            None,
            Hs256,
        }
        let mut signature = Signature::Key;
        let mut header_kid = Some(key.kid.clone());
        for tweak in tweaks {
            match tweak {
                IdTokenTweak::AlgNone => signature = Signature::None,
                IdTokenTweak::Hs256WithPublicKey => signature = Signature::Hs256,
                IdTokenTweak::SignedByForeignKey => signature = Signature::Foreign,
                IdTokenTweak::UnknownKid => header_kid = Some(format!("unknown-{}", random::token())),
                IdTokenTweak::NoKid => header_kid = None,
                IdTokenTweak::Expired => {
                    claims.insert("iat".into(), json!(now - 7200));
                    claims.insert("nbf".into(), json!(now - 7200));
                    claims.insert("exp".into(), json!(now - 3600));
                }
                IdTokenTweak::NotYetValid => {
                    claims.insert("iat".into(), json!(now + 600));
                    claims.insert("nbf".into(), json!(now + 600));
                    claims.insert("exp".into(), json!(now + 600 + 3600));
                }
                IdTokenTweak::WrongAudience => {
                    claims.insert("aud".into(), json!(Uuid::new_v4().to_string()));
                }
                IdTokenTweak::WrongNonce => {
                    claims.insert("nonce".into(), json!(random::token()));
                }
                IdTokenTweak::Claims(extra) => claims.extend(extra),
                IdTokenTweak::RemoveClaims(names) => {
                    for name in names {
                        claims.remove(&name);
                    }
                }
            }
        }

        let header = |alg: Algorithm| Header { kid: header_kid.clone(), ..Header::new(alg) };
        let signed = match signature {
            Signature::Key => jsonwebtoken::encode(&header(Algorithm::RS256), &claims, &key.encoding),
            Signature::Foreign => match &state.foreign_key {
                Some(foreign) => jsonwebtoken::encode(&header(Algorithm::RS256), &claims, foreign),
                None => return Err(OAuthError::server("No foreign key was prepared.")),
            },
            Signature::Hs256 => {
                let secret = serde_json::to_vec(&key.jwk).unwrap_or_default();
                jsonwebtoken::encode(&header(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret))
            }
            Signature::None => {
                let mut header = json!({ "typ": "JWT", "alg": "none" });
                if let Some(kid) = &header_kid {
                    header["kid"] = json!(kid);
                }
                let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
                return Ok(format!("{}.{}.", encode(&header), encode(&Value::Object(claims))));
            }
        };
        signed.map_err(|error| OAuthError::server(format!("Signing failed: {error}")))
    }
}

/// The tenant segment of a path.
enum Tenant {
    Common,
    Organizations,
    Consumers,
    /// A tenant GUID; a verified domain name resolves to [`FAKE_ORG_TENANT`].
    Id(String),
}

impl Tenant {
    fn parse(segment: &str) -> Option<Self> {
        let lower = segment.to_ascii_lowercase();
        match lower.as_str() {
            "common" => Some(Self::Common),
            "organizations" => Some(Self::Organizations),
            "consumers" => Some(Self::Consumers),
            guid if guid.len() == 36 && Uuid::try_parse(guid).is_ok() => Some(Self::Id(lower)),
            domain
                if domain.contains('.')
                    && domain.split('.').all(|label| {
                        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    }) =>
            {
                Some(Self::Id(FAKE_ORG_TENANT.into()))
            }
            _ => None,
        }
    }

    /// The `issuer` of this tenant's metadata document, as Microsoft publishes it.
    fn issuer(&self, base_url: &str) -> String {
        match self {
            Self::Common | Self::Organizations => template_issuer(base_url),
            Self::Consumers => format!("{base_url}/{CONSUMER_TENANT}/v2.0"),
            Self::Id(tid) => format!("{base_url}/{tid}/v2.0"),
        }
    }

    fn path(&self) -> &str {
        match self {
            Self::Common => "common",
            Self::Organizations => "organizations",
            Self::Consumers => "consumers",
            Self::Id(tid) => tid,
        }
    }
}

/// The multi-tenant issuer with Microsoft's literal `{tenantid}` placeholder.
fn template_issuer(base_url: &str) -> String {
    format!("{base_url}/{{tenantid}}/v2.0")
}

/// Query or form parameters; an empty value counts as absent, as at Microsoft.
struct Params(HashMap<String, String>);

impl Params {
    /// Err names a parameter given twice (RFC 6749 §3.1: parameters must not be repeated).
    fn parse(input: &[u8]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (name, value) in form_urlencoded::parse(input) {
            if map.insert(name.clone().into_owned(), value.into_owned()).is_some() {
                return Err(name.into_owned());
            }
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }
}

/// A Microsoft-style token endpoint error.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

impl OAuthError {
    fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error, code, message: message.into() }
    }

    fn missing(parameter: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn invalid_grant(code: u32, message: impl Into<String>) -> Self {
        Self::bad_request("invalid_grant", code, message)
    }

    fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, error: "invalid_client", code, message: message.into() }
    }

    fn server(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, error: "server_error", code: 90033, message: message.into() }
    }

    /// The JSON body Microsoft sends: the description repeats the trace and correlation ids and the timestamp.
    fn into_response(self, base_url: &str) -> Response {
        let trace_id = Uuid::new_v4().to_string();
        let correlation_id = Uuid::new_v4().to_string();
        let timestamp = timestamp();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        });
        json_response(self.status, &body)
    }
}

/// The client credentials of a token request, from the body and the `Authorization` header.
struct Credentials {
    client_id: Option<String>,
    secret: Option<String>,
    method: ClientAuth,
}

impl Credentials {
    fn from_request(headers: &HeaderMap, params: &Params) -> Result<Self, OAuthError> {
        let body_id = params.get("client_id").map(str::to_owned);
        let body_secret = params.get("client_secret").map(str::to_owned);
        let basic = match headers.get(header::AUTHORIZATION) {
            Some(value) => parse_basic(value)?,
            None => None,
        };
        if let Some(kind) = params.get("client_assertion_type") {
            if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
                return Err(OAuthError::bad_request("invalid_request", 700023, "Invalid client_assertion_type."));
            }
            let method =
                if basic.is_some() || body_secret.is_some() { ClientAuth::Both } else { ClientAuth::Assertion };
            let assertion = params.get("client_assertion").map(str::to_owned);
            return Ok(Self { client_id: body_id, secret: assertion, method });
        }
        Ok(match (basic, body_secret) {
            (Some((id, secret)), body_secret) => {
                if body_id.as_ref().is_some_and(|body_id| *body_id != id) {
                    return Err(OAuthError::bad_request(
                        "invalid_request",
                        90014,
                        "The client_id in the body differs from the one in the Authorization header.",
                    ));
                }
                let method = if body_secret.is_some() { ClientAuth::Both } else { ClientAuth::Basic };
                Self { client_id: Some(id), secret: Some(secret), method }
            }
            (None, Some(secret)) => Self { client_id: body_id, secret: Some(secret), method: ClientAuth::Post },
            (None, None) => Self { client_id: body_id, secret: None, method: ClientAuth::None },
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1). `Ok(None)` for other schemes.
fn parse_basic(value: &HeaderValue) -> Result<Option<(String, String)>, OAuthError> {
    let malformed = || OAuthError::bad_request("invalid_request", 90014, "Malformed HTTP Basic client authentication.");
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id).ok_or_else(malformed)?, form_decode(secret).ok_or_else(malformed)?)))
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte.
fn form_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn s256(verifier: &str) -> String {
    digest::sha256_base64url(verifier.as_bytes())
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Microsoft's error timestamp format, `2025-01-31 12:34:56Z`.
fn timestamp() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store, no-cache"),
            (header::PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page Microsoft shows when it cannot trust the redirect URI: a 400, never a redirect (that would make
/// the authorize endpoint an open redirector).
fn error_page(code: u32, message: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>Sign in to your account</title></head><body>\n\
         <h1>Sorry, but we're having trouble signing you in.</h1>\n\
         <p id=\"error\">AADSTS{code}: {}</p>\n</body></html>\n",
        html_escape(message)
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

#[derive(Clone, Copy)]
enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

/// Sends the authorization response (code or error) back to the client the way `response_mode` asks.
fn authorization_response(redirect_uri: &Url, mode: ResponseMode, params: &[(&str, &str)]) -> Response {
    let location = match mode {
        ResponseMode::Query => {
            let mut url = redirect_uri.clone();
            url.query_pairs_mut().extend_pairs(params);
            url
        }
        ResponseMode::Fragment => {
            let mut url = redirect_uri.clone();
            let fragment = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            url.set_fragment(Some(&fragment));
            url
        }
        ResponseMode::FormPost => {
            // Microsoft's page, values also readable by a test without a browser.
            let inputs: String = params
                .iter()
                .map(|(name, value)| {
                    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\" />", html_escape(name), html_escape(value))
                })
                .collect();
            let page = format!(
                "<html><head><title>Working...</title></head><body>\
                 <form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}\
                 <noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" />\
                 </noscript></form><script language=\"javascript\">document.forms[0].submit();</script></body></html>",
                html_escape(redirect_uri.as_str())
            );
            return Html(page).into_response();
        }
    };
    match HeaderValue::try_from(location.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => error_page(90102, "'redirect_uri' value must be a valid absolute URI."),
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: validates the request, signs in the next user without asking, and
/// sends a code back.
async fn authorize(State(inner): State<Arc<Inner>>, Path(tenant): Path<String>, RawQuery(query): RawQuery) -> Response {
    inner.authorize_requests.fetch_add(1, Ordering::Relaxed);
    let params = match Params::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(name) => {
            let message = format!("The request is not properly formatted. The parameter '{name}' is duplicated.");
            return error_page(9000411, &message);
        }
    };
    inner.lock().last_authorize_query = Some(params.0.clone());

    // Until client and redirect URI are known to be good, errors are a page: redirecting would be unsafe.
    let Some(tenant) = Tenant::parse(&tenant) else {
        return error_page(90002, &format!("Tenant '{tenant}' not found."));
    };
    let Some(client_id) = params.get("client_id") else {
        return error_page(900144, "The request body must contain the following parameter: 'client_id'.");
    };
    if client_id != inner.options.client_id {
        let message =
            format!("Application with identifier '{client_id}' was not found in the directory '{}'.", tenant.path());
        return error_page(700016, &message);
    }
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return error_page(900144, "The request body must contain the following parameter: 'redirect_uri'.");
    };
    let Ok(redirect_url) = Url::parse(redirect_uri) else {
        return error_page(90102, "'redirect_uri' value must be a valid absolute URI.");
    };
    let registered = &inner.options.redirect_uris;
    if !registered.is_empty() && !registered.iter().any(|uri| uri == redirect_uri) {
        let message = format!(
            "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured \
             for the application '{client_id}'."
        );
        return error_page(50011, &message);
    }

    let state = params.get("state");
    let (mode, bad_mode) = match params.get("response_mode") {
        None | Some("query") => (ResponseMode::Query, None),
        Some("fragment") => (ResponseMode::Fragment, None),
        Some("form_post") => (ResponseMode::FormPost, None),
        Some(other) => (ResponseMode::Query, Some(other)),
    };
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        pairs.extend(state.map(|state| ("state", state)));
        authorization_response(&redirect_url, mode, &pairs)
    };
    if let Some(other) = bad_mode {
        return fail("invalid_request", &format!("AADSTS900144: The response_mode '{other}' is not supported."));
    }
    let injected = inner.lock().next_authorize_error.take();
    if let Some((error, description)) = injected {
        return fail(&error, &description);
    }
    match params.get("response_type") {
        None => {
            return fail(
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'response_type'.",
            );
        }
        Some("code") => {}
        Some(other) => {
            let description = format!("AADSTS700054: response_type '{other}' is not enabled for the application.");
            return fail("unsupported_response_type", &description);
        }
    }
    let Some(scope) = params.get("scope") else {
        return fail(
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
        );
    };
    let Some(code_challenge) = params.get("code_challenge") else {
        return fail("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required.");
    };
    if params.get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "AADSTS50148: The code_challenge_method must be S256.");
    }
    if code_challenge.len() != 43
        || !code_challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail("invalid_request", "AADSTS501491: Invalid size of Code_Challenge parameter.");
    }

    let code = random::token();
    {
        let mut guard = inner.lock();
        let user = match guard.queued_users.pop_front() {
            Some(user) => user,
            None => (guard.default_user)(),
        };
        if guard.codes.len() >= MAX_KEPT_CODES {
            guard.codes.retain(|_, code| code.issued_at.elapsed() < CODE_LIFETIME * 2);
        }
        let issued = IssuedCode {
            tenant: tenant.path().to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: code_challenge.to_owned(),
            nonce: params.get("nonce").map(str::to_owned),
            scope: scope.to_owned(),
            user,
            issued_at: Instant::now(),
            expired: false,
            used: false,
        };
        guard.codes.insert(code.clone(), issued);
    }
    let mut pairs = vec![("code", code.as_str())];
    pairs.extend(state.map(|state| ("state", state)));
    authorization_response(&redirect_url, mode, &pairs)
}

/// `POST /{tenant}/oauth2/v2.0/token`: redeems a code. Always JSON, never a redirect.
async fn token(
    State(inner): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.token_requests.fetch_add(1, Ordering::Relaxed);
    let delay = inner.lock().next_token_delay.take();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }

    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    // A body that is not a form reads as no parameters at all, which is how Microsoft answers it.
    let request = Params::parse(if is_form { &body } else { b"" })
        .map_err(|name| {
            let message = format!("The request is not properly formatted. The parameter '{name}' is duplicated.");
            OAuthError::bad_request("invalid_request", 9000411, message)
        })
        .and_then(|params| Ok((Credentials::from_request(&headers, &params)?, params)));
    let failure = {
        let mut state = inner.lock();
        if let Ok((credentials, params)) = &request {
            state.last_token_request = Some(TokenRequestRecord {
                tenant: tenant.clone(),
                grant_type: params.get("grant_type").map(str::to_owned),
                client_id: credentials.client_id.clone(),
                client_auth: credentials.method,
                redirect_uri: params.get("redirect_uri").map(str::to_owned),
                code_verifier_present: params.get("code_verifier").is_some(),
            });
        }
        state.next_token_failure.take()
    };
    if let Some((status, body)) = failure {
        return json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &body);
    }
    let (credentials, params) = match request {
        Ok(request) => request,
        Err(error) => return error.into_response(&inner.base_url),
    };
    match inner.redeem(&tenant, &params, credentials) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error.into_response(&inner.base_url),
    }
}

fn query_pairs(query: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// Graph's answer to a request without a token it knows, or without the permission the resource needs.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Box<Response> {
    Box::new(json_response(status, &json!({ "error": { "code": code, "message": message } })))
}

/// The grant behind a Graph request's bearer token, if it holds `permission`; otherwise Graph's refusal.
fn graph_grant(inner: &Inner, headers: &HeaderMap, permission: &str) -> Result<GraphGrant, Box<Response>> {
    inner.graph_requests.fetch_add(1, Ordering::Relaxed);
    let mut state = inner.lock();
    if let Some((status, body)) = state.next_graph_failure.take() {
        return Err(Box::new(json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &body,
        )));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(grant) = bearer.and_then(|token| state.access_tokens.get(token)).cloned() else {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty or invalid.",
        ));
    };
    // Scopes arrive as `{graph}/Permission`; the permission is the last segment.
    if !grant.scope.split(' ').any(|scope| scope.rsplit('/').next() == Some(permission)) {
        return Err(graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    Ok(grant)
}

/// `GET /v1.0/me/transitiveMemberOf/microsoft.graph.group`: the user's groups, `$top` per page (as Graph: at most
/// [`GRAPH_MAX_PAGE_SIZE`], [`GRAPH_DEFAULT_PAGE_SIZE`] without), the next page linked by `$skiptoken`.
async fn graph_groups(State(inner): State<Arc<Inner>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = query_pairs(query);
    let grant = match graph_grant(&inner, &headers, "GroupMember.Read.All") {
        Ok(grant) => grant,
        Err(refusal) => return *refusal,
    };
    let start: usize = query.get("$skiptoken").and_then(|token| token.parse().ok()).unwrap_or(0);
    let page_size = query
        .get("$top")
        .and_then(|top| top.parse::<usize>().ok())
        .unwrap_or(GRAPH_DEFAULT_PAGE_SIZE)
        .clamp(1, GRAPH_MAX_PAGE_SIZE);
    let end = (start + page_size).min(grant.user.groups.len());
    let page: Vec<Value> =
        grant.user.groups.get(start..end).unwrap_or_default().iter().map(|id| json!({ "id": id })).collect();
    let mut body = json!({ "@odata.context": format!("{}/v1.0/$metadata#groups(id)", inner.base_url), "value": page });
    if end < grant.user.groups.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id&$top={page_size}&$skiptoken={end}",
            inner.base_url
        ));
    }
    json_response(StatusCode::OK, &body)
}

/// `GET /v1.0/organization`: the signed-in user's organisation.
async fn graph_organization(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let grant = match graph_grant(&inner, &headers, "User.Read") {
        Ok(grant) => grant,
        Err(refusal) => return *refusal,
    };
    let name = inner.lock().tenant_names.get(&grant.user.tid).cloned();
    json_response(StatusCode::OK, &json!({ "value": [{ "id": grant.user.tid, "displayName": name }] }))
}

/// `GET /v1.0/me?$select=…`: the signed-in user's profile, only the selected attributes (and `id`).
async fn graph_me(State(inner): State<Arc<Inner>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = query_pairs(query);
    let grant = match graph_grant(&inner, &headers, "User.Read") {
        Ok(grant) => grant,
        Err(refusal) => return *refusal,
    };
    let user = grant.user;
    let mut profile = Map::new();
    profile.insert("id".into(), json!(user.oid));
    profile.insert("displayName".into(), json!(user.name));
    profile.insert("mail".into(), json!(user.email));
    profile.insert("userPrincipalName".into(), json!(user.upn));
    profile.extend(user.graph_attributes);
    let selected: Map<String, Value> = match query.get("$select") {
        Some(select) => {
            let names: HashSet<&str> = select.split(',').chain(["id"]).collect();
            profile.into_iter().filter(|(name, _)| names.contains(name.as_str())).collect()
        }
        None => profile,
    };
    json_response(StatusCode::OK, &Value::Object(selected))
}

/// `GET /{tenant}/discovery/v2.0/keys`.
async fn jwks(State(inner): State<Arc<Inner>>, Path(tenant): Path<String>) -> Response {
    inner.jwks_requests.fetch_add(1, Ordering::Relaxed);
    if Tenant::parse(&tenant).is_none() {
        let error = OAuthError::bad_request("invalid_tenant", 90002, format!("Tenant '{tenant}' not found."));
        return error.into_response(&inner.base_url);
    }
    if inner.lock().jwks_down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    json_response(StatusCode::OK, &inner.jwks_document())
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
async fn discovery(State(inner): State<Arc<Inner>>, Path(tenant): Path<String>) -> Response {
    inner.discovery_requests.fetch_add(1, Ordering::Relaxed);
    let Some(tenant) = Tenant::parse(&tenant) else {
        let error = OAuthError::bad_request("invalid_tenant", 90002, format!("Tenant '{tenant}' not found."));
        return error.into_response(&inner.base_url);
    };
    let base = &inner.base_url;
    let path = tenant.path();
    let document = json!({
        "token_endpoint": format!("{base}/{path}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{path}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": tenant.issuer(base),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/{path}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{path}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{path}/oauth2/v2.0/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host",
            "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
            "c_hash", "email"
        ],
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    });
    json_response(StatusCode::OK, &document)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use reqwest::{Client, StatusCode, redirect::Policy};

    use super::*;

    const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    /// Has characters that must be form-urlencoded for HTTP Basic.
    const SECRET: &str = "s3cr~et+value/with:chars=";
    const REDIRECT: &str = "http://127.0.0.1:1/thirdparty/callback";

    #[test]
    fn a_stable_user_keeps_its_ids_and_another_email_gets_others() {
        let megan = FakeUser::stable("megan@contoso.com");
        assert_eq!(megan, FakeUser::stable("megan@contoso.com"));
        let adele = FakeUser::stable("adele@contoso.com");
        assert!(megan.sub != adele.sub && megan.oid != adele.oid);
        assert_eq!(megan.sub.len(), 43, "Microsoft's pairwise sub is 43 base64url characters");
        assert!(Uuid::parse_str(&megan.oid).is_ok());
        assert_ne!(FakeUser::new("megan@contoso.com").sub, FakeUser::new("megan@contoso.com").sub);
    }

    async fn start() -> FakeEntra {
        FakeEntra::start(FakeEntraOptions {
            client_id: CLIENT_ID.into(),
            client_secrets: vec!["older-secret".into(), SECRET.into()],
            redirect_uris: vec![REDIRECT.into()],
            certificates: Vec::new(),
        })
        .await
    }

    fn client() -> Client {
        Client::builder().redirect(Policy::none()).build().expect("client")
    }

    #[tokio::test]
    async fn client_assertions_are_checked_and_work_once() {
        use gatehouse_crypto::certificate::{ClientAssertionKey, generate_self_signed};
        let uploaded = generate_self_signed("test", 30, time::OffsetDateTime::now_utc()).expect("certificate");
        let fake = FakeEntra::start(FakeEntraOptions {
            client_id: CLIENT_ID.into(),
            client_secrets: Vec::new(),
            redirect_uris: vec![REDIRECT.into()],
            certificates: vec![FakeCertificate::new(&uploaded.thumbprint_sha256, &uploaded.private_key_pem)],
        })
        .await;
        let key = ClientAssertionKey::from_pem(&uploaded.private_key_pem, &uploaded.certificate_pem, "PS256").unwrap();
        let redeem = |assertion: String| {
            let fake = fake.clone();
            async move {
                let (verifier, challenge) = pkce();
                let params = redirect_params(&authorize(&fake, &authorize_query(&challenge, &[])).await);
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", params["code"].as_str()),
                    ("redirect_uri", REDIRECT),
                    ("client_id", CLIENT_ID),
                    ("code_verifier", verifier.as_str()),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion.as_str()),
                ];
                client().post(fake.token_endpoint("common")).form(&form).send().await.expect("token").status()
            }
        };
        let now = gatehouse_core::clock::Timestamp::from_secs(
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64,
        );
        let assertion = key.assertion(CLIENT_ID, &fake.token_endpoint("common"), now).unwrap();
        assert_eq!(redeem(assertion.clone()).await, StatusCode::OK);
        assert_eq!(redeem(assertion).await, StatusCode::UNAUTHORIZED, "a replayed assertion (same jti)");
        let elsewhere = key.assertion(CLIENT_ID, &fake.token_endpoint("organizations"), now).unwrap();
        assert_eq!(redeem(elsewhere).await, StatusCode::UNAUTHORIZED, "an assertion for another token endpoint");
        let expired =
            key.assertion(CLIENT_ID, &fake.token_endpoint("common"), now - Duration::from_secs(3600)).unwrap();
        assert_eq!(redeem(expired).await, StatusCode::UNAUTHORIZED, "an expired assertion");
    }

    /// A fresh PKCE pair (verifier, challenge).
    fn pkce() -> (String, String) {
        let verifier = random::token();
        let challenge = s256(&verifier);
        (verifier, challenge)
    }

    fn authorize_query<'a>(challenge: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut query = vec![
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", "state-123"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        for (name, value) in extra {
            query.retain(|(existing, _)| existing != name);
            query.push((name, value));
        }
        query
    }

    async fn authorize(fake: &FakeEntra, query: &[(&str, &str)]) -> reqwest::Response {
        client().get(fake.authorize_endpoint("common")).query(query).send().await.expect("authorize")
    }

    /// The parameters of a redirect back to the client.
    fn redirect_params(response: &reqwest::Response) -> HashMap<String, String> {
        assert_eq!(response.status(), StatusCode::FOUND, "expected a redirect");
        let location = response.headers()[header::LOCATION].to_str().expect("ascii location");
        assert!(location.starts_with(REDIRECT), "redirected to {location}");
        Url::parse(location).expect("location").query_pairs().into_owned().collect()
    }

    /// Runs authorize and returns the code, checking that `state` came back.
    async fn code(fake: &FakeEntra, challenge: &str, extra: &[(&str, &str)]) -> String {
        let params = redirect_params(&authorize(fake, &authorize_query(challenge, extra)).await);
        assert_eq!(params.get("state").map(String::as_str), Some("state-123"));
        params.get("code").expect("a code").clone()
    }

    async fn redeem(fake: &FakeEntra, code: &str, verifier: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code_verifier", verifier),
        ];
        let response = client().post(fake.token_endpoint("common")).form(&form).send().await.expect("token");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Verifies an ID token against the served JWKS the way a careful client would.
    async fn verify(
        fake: &FakeEntra,
        id_token: &str,
        tid: &str,
    ) -> Result<Map<String, Value>, jsonwebtoken::errors::Error> {
        let kid = jsonwebtoken::decode_header(id_token)?.kid.expect("a kid");
        let jwks: Value = client().get(fake.jwks_uri("common")).send().await.expect("jwks").json().await.expect("json");
        let entry = jwks["keys"].as_array().expect("keys").iter().find(|key| key["kid"] == kid).expect("kid published");
        let jwk: Jwk = serde_json::from_value(entry.clone()).expect("a JWK");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_issuer(&[fake.issuer_for(tid)]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        Ok(jsonwebtoken::decode::<Map<String, Value>>(id_token, &DecodingKey::from_jwk(&jwk)?, &validation)?.claims)
    }

    fn error_code(body: &Value) -> u64 {
        body["error_codes"][0].as_u64().expect("error_codes")
    }

    #[tokio::test]
    async fn authorization_code_flow_with_pkce_issues_a_verifiable_id_token() {
        let fake = start().await;
        let user = FakeUser::new("adele@contoso.com").with_xms_edov(true);
        fake.queue_user(user.clone());
        let (verifier, challenge) = pkce();
        let code = code(&fake, &challenge, &[("nonce", "nonce-abc")]).await;

        let (status, body) = redeem(&fake, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "openid profile email");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        assert!(body["access_token"].as_str().is_some_and(|token| token.len() >= 32));

        let id_token = body["id_token"].as_str().expect("id_token");
        let header = jsonwebtoken::decode_header(id_token).expect("header");
        assert_eq!((header.alg, header.typ.as_deref()), (Algorithm::RS256, Some("JWT")));
        assert_eq!(header.kid, Some(fake.current_kid()));
        let claims = verify(&fake, id_token, FAKE_ORG_TENANT).await.expect("a valid ID token");
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["iss"], format!("{}/{FAKE_ORG_TENANT}/v2.0", fake.base_url()));
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(
            (&claims["sub"], &claims["tid"], &claims["oid"]),
            (&json!(user.sub), &json!(user.tid), &json!(user.oid))
        );
        assert_eq!(claims["nonce"], "nonce-abc");
        assert_eq!(claims["email"], "adele@contoso.com");
        assert_eq!(claims["preferred_username"], "adele@contoso.com");
        assert_eq!((&claims["name"], &claims["given_name"]), (&json!("Adele Tester"), &json!("Adele")));
        assert_eq!(claims["xms_edov"], true);
        assert!(!claims.contains_key("upn"));
        let iat = claims["iat"].as_i64().expect("iat");
        assert_eq!((claims["nbf"].as_i64(), claims["exp"].as_i64()), (Some(iat), Some(iat + 3600)));

        let record = fake.last_token_request().expect("recorded");
        assert_eq!(record.client_auth, ClientAuth::Post);
        assert_eq!(record.redirect_uri.as_deref(), Some(REDIRECT));
        assert!(record.code_verifier_present);
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once() {
        let fake = start().await;
        let (verifier, challenge) = pkce();
        let code = code(&fake, &challenge, &[]).await;
        assert_eq!(redeem(&fake, &code, &verifier).await.0, StatusCode::OK);
        let (status, body) = redeem(&fake, &code, &verifier).await;
        assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid_grant")));
        assert_eq!(error_code(&body), 54005);
        assert!(body["error_description"].as_str().is_some_and(|text| text.starts_with("AADSTS54005:")));
    }

    #[tokio::test]
    async fn wrong_verifier_and_expired_code_are_refused() {
        let fake = start().await;
        let (_, challenge) = pkce();
        let code = code(&fake, &challenge, &[]).await;
        let (status, body) = redeem(&fake, &code, &pkce().0).await;
        assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid_grant")));
        assert_eq!(error_code(&body), 501481);

        let (verifier, challenge) = pkce();
        let code = self::code(&fake, &challenge, &[]).await;
        fake.expire_codes();
        let (status, body) = redeem(&fake, &code, &verifier).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, 70008));
    }

    #[tokio::test]
    async fn basic_client_authentication_is_accepted() {
        let fake = start().await;
        let (verifier, challenge) = pkce();
        let code = code(&fake, &challenge, &[]).await;
        let encode = |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
        let credentials = STANDARD.encode(format!("{}:{}", encode(CLIENT_ID), encode(SECRET)));
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];
        let response = client()
            .post(fake.token_endpoint("common"))
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .form(&form)
            .send()
            .await
            .expect("token");
        assert_eq!(response.status(), StatusCode::OK);
        let record = fake.last_token_request().expect("recorded");
        assert_eq!((record.client_auth, record.client_id.as_deref()), (ClientAuth::Basic, Some(CLIENT_ID)));
    }

    #[tokio::test]
    async fn bad_or_expired_secrets_are_invalid_client() {
        let fake = start().await;
        fake.expire_secret(SECRET);
        let (verifier, challenge) = pkce();
        let code = code(&fake, &challenge, &[]).await;
        let (status, body) = redeem(&fake, &code, &verifier).await;
        assert_eq!((status, &body["error"]), (StatusCode::UNAUTHORIZED, &json!("invalid_client")));
        assert_eq!(error_code(&body), 7000222);

        let form =
            [("grant_type", "authorization_code"), ("code", "x"), ("client_id", CLIENT_ID), ("client_secret", "no")];
        let response = client().post(fake.token_endpoint("common")).form(&form).send().await.expect("token");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&response.json().await.expect("json")), 7000215);
    }

    #[tokio::test]
    async fn form_post_page_carries_code_and_state() {
        let fake = start().await;
        let (verifier, challenge) = pkce();
        let response = authorize(&fake, &authorize_query(&challenge, &[("response_mode", "form_post")])).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = response.text().await.expect("page");
        let hidden = |name: &str| {
            let marker = format!("<input type=\"hidden\" name=\"{name}\" value=\"");
            let start = page.find(&marker).map(|at| at + marker.len()).expect("hidden input");
            page[start..].split('"').next().expect("value").to_owned()
        };
        assert!(page.contains(&format!("action=\"{REDIRECT}\"")));
        assert!(page.contains("document.forms[0].submit()"));
        assert_eq!(hidden("state"), "state-123");
        assert_eq!(redeem(&fake, &hidden("code"), &verifier).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn authorize_refusals() {
        let fake = start().await;
        let (_, challenge) = pkce();
        for (name, value) in [("client_id", "someone-else"), ("redirect_uri", "https://evil.example/callback")] {
            let response = authorize(&fake, &authorize_query(&challenge, &[(name, value)])).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}: a page, not a redirect");
            assert!(response.headers().get(header::LOCATION).is_none());
        }
        let no_pkce: Vec<_> =
            authorize_query(&challenge, &[]).into_iter().filter(|(name, _)| *name != "code_challenge").collect();
        let params = redirect_params(&authorize(&fake, &no_pkce).await);
        assert_eq!((params["error"].as_str(), params["state"].as_str()), ("invalid_request", "state-123"));
        let params = redirect_params(
            &authorize(&fake, &authorize_query(&challenge, &[("code_challenge_method", "plain")])).await,
        );
        assert_eq!(params["error"], "invalid_request");

        fake.fail_next_authorize("access_denied", "AADSTS65004: User declined to consent.");
        let params = redirect_params(&authorize(&fake, &authorize_query(&challenge, &[])).await);
        assert_eq!((params["error"].as_str(), params["state"].as_str()), ("access_denied", "state-123"));
        assert!(params["error_description"].starts_with("AADSTS65004"));
        assert!(redirect_params(&authorize(&fake, &authorize_query(&challenge, &[])).await).contains_key("code"));
    }

    #[tokio::test]
    async fn injected_token_failure_and_delay() {
        let fake = start().await;
        let (verifier, challenge) = pkce();
        let code = code(&fake, &challenge, &[]).await;
        fake.fail_next_token(500, json!({ "error": "temporarily_unavailable" }));
        fake.delay_next_token(Duration::from_millis(300));
        let started = Instant::now();
        let (status, body) = redeem(&fake, &code, &verifier).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!((status, &body["error"]), (StatusCode::INTERNAL_SERVER_ERROR, &json!("temporarily_unavailable")));
        // The injected failure did not consume the code.
        assert_eq!(redeem(&fake, &code, &verifier).await.0, StatusCode::OK);
    }

    async fn tweaked_token(fake: &FakeEntra, tweak: IdTokenTweak) -> String {
        fake.tweak_next_id_token(tweak);
        let (verifier, challenge) = pkce();
        let code = code(fake, &challenge, &[("nonce", "n")]).await;
        let (status, body) = redeem(fake, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
        body["id_token"].as_str().expect("id_token").to_owned()
    }

    #[tokio::test]
    async fn tweaked_tokens_fail_verification_and_apply_once() {
        let fake = start().await;
        for tweak in [
            IdTokenTweak::AlgNone,
            IdTokenTweak::Hs256WithPublicKey,
            IdTokenTweak::SignedByForeignKey,
            IdTokenTweak::Expired,
            IdTokenTweak::NotYetValid,
            IdTokenTweak::WrongAudience,
            IdTokenTweak::Claims(Map::from_iter([("iss".to_owned(), json!("https://evil.example/v2.0"))])),
            IdTokenTweak::RemoveClaims(vec!["sub".into()]),
        ] {
            let token = tweaked_token(&fake, tweak.clone()).await;
            assert!(verify(&fake, &token, FAKE_ORG_TENANT).await.is_err(), "{tweak:?} must not verify");
        }
        let header = |token: &str| jsonwebtoken::decode_header(token).expect("header");
        assert_eq!(header(&tweaked_token(&fake, IdTokenTweak::NoKid).await).kid, None);
        assert_ne!(header(&tweaked_token(&fake, IdTokenTweak::UnknownKid).await).kid, Some(fake.current_kid()));
        let token = tweaked_token(&fake, IdTokenTweak::WrongNonce).await;
        assert_ne!(verify(&fake, &token, FAKE_ORG_TENANT).await.expect("valid otherwise")["nonce"], "n");

        // The HS256 token really is keyed with the published JWK's JSON: the confusion attack it stands for.
        let token = tweaked_token(&fake, IdTokenTweak::Hs256WithPublicKey).await;
        let secret = serde_json::to_vec(&fake.jwks_document()["keys"][0]).expect("json");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[CLIENT_ID]);
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(&secret), &validation)
            .expect("HS256 with the JWK");

        let token = tweaked_token(&fake, IdTokenTweak::RemoveClaims(vec![])).await;
        verify(&fake, &token, FAKE_ORG_TENANT).await.expect("tweaks apply to one token only");
    }

    #[tokio::test]
    async fn queued_users_go_before_the_user_factory() {
        let fake = start().await;
        let made = Arc::new(AtomicU64::new(0));
        let counter = made.clone();
        fake.set_user_factory(move || {
            FakeUser::new(format!("user{}@contoso.com", counter.fetch_add(1, Ordering::Relaxed)))
        });
        fake.queue_user(FakeUser::new("queued@contoso.com"));
        let mut emails = Vec::new();
        for _ in 0..3 {
            let token = tweaked_token(&fake, IdTokenTweak::RemoveClaims(vec![])).await;
            let claims = verify(&fake, &token, FAKE_ORG_TENANT).await.expect("a valid ID token");
            emails.push(claims["email"].clone());
        }
        assert_eq!(emails, [json!("queued@contoso.com"), json!("user0@contoso.com"), json!("user1@contoso.com")]);
        assert_eq!(made.load(Ordering::Relaxed), 2, "one user made per authorize request without a queued user");
    }

    #[tokio::test]
    async fn key_rotation_publishes_both_keys() {
        let fake = start().await;
        let old = fake.current_kid();
        let new = fake.rotate_keys();
        let jwks: Value = client().get(fake.jwks_uri("common")).send().await.expect("jwks").json().await.expect("json");
        let keys = jwks["keys"].as_array().expect("keys");
        let kids: Vec<_> = keys.iter().map(|key| key["kid"].as_str().expect("kid")).collect();
        assert_eq!(kids, vec![old.as_str(), new.as_str()]);
        for key in keys {
            assert_eq!((&key["kty"], &key["use"]), (&json!("RSA"), &json!("sig")));
            assert!(key.get("alg").is_none(), "Microsoft publishes no alg");
            assert_eq!(key["issuer"], format!("{}/{{tenantid}}/v2.0", fake.base_url()));
            assert!(key["x5t"].is_string() && key["n"].is_string() && key["e"].is_string());
        }
        let token = tweaked_token(&fake, IdTokenTweak::RemoveClaims(vec![])).await;
        assert_eq!(jsonwebtoken::decode_header(&token).expect("header").kid, Some(new.clone()));
        verify(&fake, &token, FAKE_ORG_TENANT).await.expect("signed by the new key");

        fake.retire_old_keys();
        assert_eq!(fake.jwks_document()["keys"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn fixed_issuer_key_signs_the_next_token() {
        let fake = start().await;
        let consumer_issuer = fake.issuer_for(CONSUMER_TENANT);
        let kid = fake.add_key_with_fixed_issuer(&consumer_issuer);
        let entry =
            fake.jwks_document()["keys"].as_array().expect("keys").iter().find(|key| key["kid"] == kid).cloned();
        assert_eq!(entry.expect("published")["issuer"], consumer_issuer);
        fake.sign_next_with(&kid);
        let token = tweaked_token(&fake, IdTokenTweak::RemoveClaims(vec![])).await;
        assert_eq!(jsonwebtoken::decode_header(&token).expect("header").kid, Some(kid));
        let token = tweaked_token(&fake, IdTokenTweak::RemoveClaims(vec![])).await;
        assert_eq!(jsonwebtoken::decode_header(&token).expect("header").kid, Some(fake.current_kid()));
    }

    #[tokio::test]
    async fn discovery_and_counters() {
        let fake = start().await;
        let get = |url: String| async move {
            client().get(url).send().await.expect("get").json::<Value>().await.expect("json")
        };
        let common = get(fake.discovery_url("common")).await;
        assert_eq!(common["issuer"], format!("{}/{{tenantid}}/v2.0", fake.base_url()));
        assert_eq!(common["token_endpoint"], fake.token_endpoint("common"));
        assert_eq!(common["jwks_uri"], fake.jwks_uri("common"));
        assert_eq!(common["id_token_signing_alg_values_supported"], json!(["RS256"]));
        let tenant = get(fake.discovery_url(FAKE_ORG_TENANT)).await;
        assert_eq!(tenant["issuer"], fake.issuer_for(FAKE_ORG_TENANT));
        assert_eq!(tenant["authorization_endpoint"], fake.authorize_endpoint(FAKE_ORG_TENANT));
        get(fake.jwks_uri("common")).await;

        let (verifier, challenge) = pkce();
        let code = code(&fake, &challenge, &[]).await;
        redeem(&fake, &code, &verifier).await;
        redeem(&fake, &code, &verifier).await;
        assert_eq!(
            (fake.discovery_requests(), fake.jwks_requests(), fake.authorize_requests(), fake.token_requests()),
            (2, 1, 1, 2)
        );
    }
}
