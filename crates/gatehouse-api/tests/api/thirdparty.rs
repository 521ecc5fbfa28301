//! Sign in with Microsoft against the project's fake Entra ID, driven as a browser would: `/thirdparty/auth`,
//! the provider, the callback, `/token`. Every rule of the sign-in is one scenario here.

use gatehouse_core::clock::Clock;
use gatehouse_oidc::jwks::UNKNOWN_KID_REFETCH_INTERVAL;
use std::{collections::HashMap, time::Duration};

use gatehouse_core::config::{ClientAuthMethod, Config};
use gatehouse_store::{AuditLogEntry, AuditLogFilter};
use gatehouse_testkit::{
    Backend, TestServer, both_backends,
    fake_entra::{ClientAuth, FAKE_ORG_TENANT, FakeCertificate, FakeEntra, FakeEntraOptions, FakeUser, IdTokenTweak},
};
use serde_json::{Value, json};
use url::Url;

pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "fake-client-secret-value~42";
pub const CALLBACK: &str = "https://auth.gatehouse.test/thirdparty/callback";
pub const APP: &str = "https://app.example.com";
const CONSUMERS: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Gatehouse configured for Microsoft against a fresh fake Entra ID.
pub struct Setup {
    pub server: TestServer,
    pub entra: FakeEntra,
}

impl Setup {
    pub async fn start(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_certificates(backend, Vec::new(), configure).await
    }

    /// The fake Entra ID also knows these uploaded certificates.
    pub async fn start_with_certificates(
        backend: Backend,
        certificates: Vec<FakeCertificate>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let entra = FakeEntra::start(entra_options(certificates)).await;
        Self::with_entra(backend, entra, configure).await
    }

    /// Gatehouse configured for Microsoft against `entra`.
    pub async fn with_entra(backend: Backend, entra: FakeEntra, configure: impl FnOnce(&mut Config)) -> Self {
        let base = entra.base_url();
        let server = TestServer::start(backend, |config| {
            microsoft(config, &base);
            configure(config);
        })
        .await;
        Self { server, entra }
    }

    /// A browser that keeps the cookies Gatehouse sets.
    pub fn browser(&self) -> Browser<'_> {
        Browser { setup: self, cookies: HashMap::new() }
    }
}

/// The fake's app registration: Gatehouse's client id, secret and callback, and these uploaded certificates.
pub fn entra_options(certificates: Vec<FakeCertificate>) -> FakeEntraOptions {
    FakeEntraOptions {
        client_id: CLIENT_ID.into(),
        client_secrets: vec![CLIENT_SECRET.into()],
        redirect_uris: vec![CALLBACK.into()],
        certificates,
    }
}

fn microsoft(config: &mut Config, cloud_instance: &str) {
    let third_party = &mut config.third_party;
    third_party.redirect_url = Some(CALLBACK.into());
    third_party.error_redirect_url = Some(format!("{APP}/error"));
    third_party.allowed_redirect_urls = vec![format!("{APP}**")];
    third_party.request_timeout = "2s".parse().unwrap();
    let microsoft = &mut third_party.providers.microsoft;
    microsoft.enabled = true;
    microsoft.client_id = Some(CLIENT_ID.into());
    microsoft.secret = Some(gatehouse_core::config::Secret::new(CLIENT_SECRET));
    microsoft.cloud_instance = cloud_instance.into();
}

pub struct Browser<'a> {
    setup: &'a Setup,
    pub cookies: HashMap<String, String>,
}

impl Browser<'_> {
    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// `GET /thirdparty/auth`; returns the provider URL.
    pub async fn start(&mut self, redirect_to: &str) -> Url {
        let server = &self.setup.server;
        let response = server
            .client
            .get(server.url("/thirdparty/auth"))
            .query(&[("provider", "microsoft"), ("redirect_to", redirect_to)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307, "{}", response.text().await.unwrap());
        self.remember(&response);
        Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// Follows the provider URL at the fake; returns the callback URL it sends the browser to.
    pub async fn at_provider(&self, authorize: &Url) -> Url {
        let response = self.setup.server.client.get(authorize.clone()).send().await.unwrap();
        assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
        Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// Delivers a callback URL (Microsoft's redirect) to Gatehouse; returns where Gatehouse sends the browser.
    pub async fn callback(&mut self, callback: &Url) -> Url {
        let server = &self.setup.server;
        let mut url = Url::parse(&server.url("/thirdparty/callback")).unwrap();
        url.set_query(callback.query());
        let response = server.client.get(url).header("cookie", self.cookie_header()).send().await.unwrap();
        assert_eq!(response.status(), 307, "{}", response.text().await.unwrap());
        self.remember(&response);
        Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// The whole round trip; returns the final app URL.
    pub async fn sign_in(&mut self, redirect_to: &str) -> Url {
        let authorize = self.start(redirect_to).await;
        let callback = self.at_provider(&authorize).await;
        self.callback(&callback).await
    }

    /// `POST /token` with the `hanko_token` of `landing`.
    pub async fn exchange(&mut self, landing: &Url) -> reqwest::Response {
        let token = query(landing, "hanko_token").expect("hanko_token on the landing URL");
        let server = &self.setup.server;
        let response = server.client.post(server.url("/token")).json(&json!({ "value": token })).send().await.unwrap();
        self.remember(&response);
        response
    }
}

pub fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub fn error_of(url: &Url) -> (String, String) {
    (query(url, "error").unwrap_or_default(), query(url, "error_description").unwrap_or_default())
}

pub async fn audit_kinds(server: &TestServer) -> Vec<String> {
    let rows = server.store.list_audit_logs(&AuditLogFilter { limit: 100, ..Default::default() }).await.unwrap();
    rows.into_iter().rev().map(|row| row.kind).collect()
}

async fn sign_up_then_sign_in_is_the_same_user(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut user = FakeUser::new("Megan@Contoso.com");
    user.name = Some("Megan Bowen".into());
    setup.entra.set_default_user(user);

    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/welcome?tab=1")).await;
    assert_eq!(landing.path(), "/welcome");
    assert_eq!(query(&landing, "tab").as_deref(), Some("1"), "the existing query is kept");
    let response = browser.exchange(&landing).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-session-lifetime"], "43200");
    let user_id = response.json::<Value>().await.unwrap()["user_id"].as_str().unwrap().to_owned();
    let session = browser.cookies["hanko"].clone();
    let server = &setup.server;
    let me = server.me(&session).await;
    assert_eq!(me["id"], json!(user_id));
    assert_eq!(me["emails"][0]["address"], "megan@contoso.com");
    assert_eq!(me["emails"][0]["is_verified"], true);
    assert_eq!(me["identities"][0]["provider"], "Microsoft");
    assert_eq!(me["name"], "Megan Bowen");

    let mut second = setup.browser();
    let landing = second.sign_in(&format!("{APP}/")).await;
    let again = second.exchange(&landing).await.json::<Value>().await.unwrap();
    assert_eq!(again["user_id"], json!(user_id), "the second visit signs in the same user");
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    let kinds = audit_kinds(server).await;
    assert!(kinds.contains(&"thirdparty_signup_succeeded".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"thirdparty_signin_succeeded".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"token_exchange_succeeded".to_owned()), "{kinds:?}");
}

async fn the_authorize_request_is_complete(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.third_party.providers.microsoft.prompt = Some("select_account".into());
        config.third_party.providers.microsoft.tenant = "organizations".into();
    })
    .await;
    let mut browser = setup.browser();
    let url = browser.start(&format!("{APP}/")).await;
    assert_eq!(url.path(), "/organizations/oauth2/v2.0/authorize");
    let params: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["redirect_uri"], CALLBACK);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["scope"], "openid profile email");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);
    assert_eq!(params["prompt"], "select_account");
    assert!(params["nonce"].len() >= 32 && params["state"].len() > 100);
    assert!(!params["state"].contains("app.example.com"), "the state is sealed");
    assert!(browser.cookies.contains_key("hanko_thirdparty_state"), "the state is bound to this browser");
}

async fn disallowed_targets_are_refused_before_anything_happens(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let server = &setup.server;
    for target in [
        "https://evil.example.com/",
        "https://app.example.com@evil.com/",
        "https://app.example.com.evil.com/",
        "//evil.com",
        "javascript:alert(1)",
        "https://app.example.com\\@evil.com",
        "",
    ] {
        let response = server
            .client
            .get(server.url("/thirdparty/auth"))
            .query(&[("provider", "microsoft"), ("redirect_to", target)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{target:?}");
        assert!(response.headers().get("location").is_none(), "never a redirect to {target:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], 400);
    }
    let unknown =
        server.client.get(server.url("/thirdparty/auth?provider=google&redirect_to=https://app.example.com/")).send();
    assert_eq!(unknown.await.unwrap().status(), 400);
    assert_eq!(setup.entra.authorize_requests(), 0);
}

async fn a_state_works_once_and_only_in_its_browser(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut browser = setup.browser();
    let authorize = browser.start(&format!("{APP}/")).await;
    let callback = browser.at_provider(&authorize).await;

    let mut stranger = setup.browser();
    let elsewhere = stranger.callback(&callback).await;
    assert_eq!(error_of(&elsewhere).0, "invalid_request", "another browser cannot use the state");
    assert!(query(&elsewhere, "hanko_token").is_none());

    let landing = browser.callback(&callback).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");
    let replay = browser.callback(&callback).await;
    assert_eq!(error_of(&replay).0, "invalid_request", "a replayed state fails");
    assert_eq!(replay.as_str().split('?').next(), Some(format!("{APP}/").as_str()), "errors go to redirect_to");
}

async fn expired_or_forged_states_go_to_the_error_url(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let sealer = gatehouse_crypto::sealing::Sealer::new(&[gatehouse_testkit::TEST_SECRET_KEY]).unwrap();
    let expired = gatehouse_oidc::state::ThirdPartyState {
        id: uuid::Uuid::new_v4().into(),
        provider: "microsoft".into(),
        tenant: "common".into(),
        redirect_to: format!("{APP}/"),
        nonce: "n".into(),
        code_verifier: gatehouse_oidc::pkce::new_verifier(),
        client_verifier: true,
        browser_binding: None,
        flow_id: None,
        connect_user_id: None,
        expires_at: setup.server.clock.now().as_secs() - 1,
    }
    .seal(&sealer);
    let mut browser = setup.browser();
    for state in [expired.as_str(), "forged-state"] {
        let mut callback = Url::parse(CALLBACK).unwrap();
        callback.query_pairs_mut().append_pair("code", "x").append_pair("state", state);
        let landing = browser.callback(&callback).await;
        assert!(landing.as_str().starts_with(&format!("{APP}/error?")), "{landing}");
        assert_eq!(error_of(&landing).0, "invalid_request");
    }
    assert_eq!(setup.entra.token_requests(), 0);
}

async fn provider_errors_are_passed_through(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    setup.entra.fail_next_authorize("access_denied", "AADSTS65004: User declined to consent");
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/login")).await;
    assert!(landing.as_str().starts_with(&format!("{APP}/login?")));
    assert_eq!(error_of(&landing), ("access_denied".into(), "AADSTS65004: User declined to consent".into()));
    assert!(audit_kinds(&setup.server).await.contains(&"thirdparty_signin_signup_failed".to_owned()));
}

/// The admin-consent URL in a refusal's description, checked to be Microsoft's endpoint for `tenant` at the fake.
fn admin_consent_link(setup: &Setup, description: &str, tenant: &str) {
    const SAYS: &str = "This app needs an administrator of your organisation to approve it before you can sign in. \
                        Send your administrator this link: ";
    let link = description.strip_prefix(SAYS).unwrap_or_else(|| panic!("{description}"));
    let url = Url::parse(link).unwrap();
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        format!("{}/{tenant}/v2.0/adminconsent", setup.entra.base_url())
    );
    let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    // The fake serves its own Graph, as a national cloud does.
    let scope = format!("{}/.default", setup.entra.base_url());
    let expected = [
        ("client_id", CLIENT_ID),
        ("scope", scope.as_str()),
        ("redirect_uri", CALLBACK),
        ("state", "gatehouse_admin_consent"),
    ];
    assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())), "{url}");
    assert!(!description.chars().any(char::is_control) && description.len() < 512, "{description}");
}

async fn a_refusal_for_missing_admin_consent_says_whom_to_ask(backend: Backend) {
    // At the authorize step, for an app of one tenant: the provider's code stays, the link is that tenant's.
    let single =
        Setup::start(backend, |config| config.third_party.providers.microsoft.tenant = FAKE_ORG_TENANT.into()).await;
    single.entra.fail_next_authorize(
        "consent_required",
        "AADSTS65001: The user or administrator has not consented to use the application with ID \
         '11111111-2222-3333-4444-555555555555' named 'Gatehouse'.\r\nTrace ID: 0000",
    );
    let landing = single.browser().sign_in(&format!("{APP}/login")).await;
    assert!(landing.as_str().starts_with(&format!("{APP}/login?")), "{landing}");
    let (error, description) = error_of(&landing);
    assert_eq!(error, "consent_required");
    admin_consent_link(&single, &description, FAKE_ORG_TENANT);

    // A multi-tenant app cannot know the user's tenant before a token: the administrator's own is asked.
    let multi = Setup::start(backend, |_| {}).await;
    multi.entra.fail_next_authorize("access_denied", "AADSTS90094: The grant requires admin permission.");
    let (error, description) = error_of(&multi.browser().sign_in(&format!("{APP}/")).await);
    assert_eq!(error, "access_denied");
    admin_consent_link(&multi, &description, "organizations");

    // At the token endpoint: Hanko's code for a failed redemption, and the same explanation.
    multi.entra.fail_next_token(
        400,
        json!({
            "error": "invalid_grant",
            "error_description": "AADSTS65001: The user or administrator has not consented to use the application.",
            "error_codes": [65001],
        }),
    );
    let (error, description) = error_of(&multi.browser().sign_in(&format!("{APP}/")).await);
    assert_eq!(error, "invalid_request");
    admin_consent_link(&multi, &description, "organizations");
    multi.entra.fail_next_token(400, json!({ "error": "invalid_grant", "error_codes": [90008] }));
    let (_, description) = error_of(&multi.browser().sign_in(&format!("{APP}/")).await);
    admin_consent_link(&multi, &description, "organizations");

    // Any other refusal of the code keeps its text.
    multi.entra.fail_next_token(400, json!({ "error": "invalid_grant", "error_description": "AADSTS70008: expired" }));
    let refused = error_of(&multi.browser().sign_in(&format!("{APP}/")).await);
    assert_eq!(refused, ("invalid_request".into(), "could not exchange authorization code for access token".into()));

    // The administrator who opened the link comes back to the callback: a page says whether the app is approved,
    // in fixed words whatever the redirect carries, and no sign-in is attempted.
    let server = &multi.server;
    let token_requests = multi.entra.token_requests();
    let consent_return = |query: &'static str| async move {
        let url = format!("{}?{query}&state=gatehouse_admin_consent", server.url("/thirdparty/callback"));
        let response = server.client.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, page) = consent_return("admin_consent=True&tenant=72f988bf-86f1-41af-91ab-2d7cd011db47").await;
    assert_eq!(status, 200);
    assert!(page.contains("The app is approved for your organisation"), "{page}");
    let (status, page) = consent_return("error=access_denied&error_description=Call%20%2B1%20555%200100").await;
    assert!(status == 200 && page.contains("was not approved") && !page.contains("555"), "{page}");
    assert_eq!(multi.entra.token_requests(), token_requests, "no code was redeemed for these returns");
}

async fn token_endpoint_failures_never_leak(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    setup.entra.fail_next_token(500, json!({"error": "temporarily_unavailable", "error_description": "SECRET-BODY"}));
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing), ("server_error".into(), "an internal error has occurred".into()));
    assert!(!landing.as_str().contains("SECRET-BODY"));

    setup.entra.delay_next_token(Duration::from_secs(4));
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "server_error", "a slow provider times out");

    setup.entra.expire_secret(CLIENT_SECRET);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "server_error", "a rejected client secret is our problem, not the user's");
    assert_eq!(setup.server.store.count_users().await.unwrap(), 0);
    let rows = setup.server.store.list_audit_logs(&AuditLogFilter { limit: 100, ..Default::default() }).await.unwrap();
    let failed = |row: &&AuditLogEntry| row.kind == "thirdparty_signin_signup_failed";
    assert!(
        rows.iter().filter(failed).any(|row| row.error.as_deref() == Some("server_error")),
        "a server_error writes an audit row like every other failure: {rows:?}"
    );
}

async fn client_secret_basic_works(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.third_party.providers.microsoft.client_auth_method = ClientAuthMethod::ClientSecretBasic;
    })
    .await;
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    assert_eq!(browser.exchange(&landing).await.status(), 200);
    let record = setup.entra.last_token_request().unwrap();
    assert_eq!(record.client_auth, ClientAuth::Basic);
    assert!(record.code_verifier_present, "PKCE is always used");
}

async fn a_refused_secret_fails_over_to_the_next(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        let microsoft = &mut config.third_party.providers.microsoft;
        microsoft.secret = Some(gatehouse_core::config::Secret::new("secret-not-yet-in-azure"));
        microsoft.secrets = vec![
            gatehouse_core::config::ClientSecretConfig {
                value: gatehouse_core::config::Secret::new("revoked-in-azure"),
                expires_at: Some("2098-12-31".into()),
            },
            gatehouse_core::config::ClientSecretConfig {
                value: gatehouse_core::config::Secret::new("long-expired-secret"),
                expires_at: Some("2020-01-01".into()),
            },
            gatehouse_core::config::ClientSecretConfig {
                value: gatehouse_core::config::Secret::new(CLIENT_SECRET),
                expires_at: Some("2099-12-31".into()),
            },
        ];
    })
    .await;
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "the third usable secret was used: {landing}");
    assert_eq!(setup.entra.token_requests(), 3, "each usable secret once; the expired secret is never sent");
    assert_eq!(setup.server.state.third_party().microsoft().unwrap().credential_failovers(), 2);

    setup.entra.expire_secret(CLIENT_SECRET);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "server_error", "no usable secret left");
}

async fn a_certificate_authenticates_instead_of_a_secret(backend: Backend) {
    use gatehouse_crypto::certificate::generate_self_signed;
    let now = time::OffsetDateTime::now_utc();
    let uploaded = generate_self_signed("Gatehouse", 365, now).unwrap();
    let registered = vec![FakeCertificate::new(&uploaded.thumbprint_sha256, &uploaded.private_key_pem)];
    for algorithm in ["PS256", "RS256"] {
        let setup = Setup::start_with_certificates(backend, registered.clone(), |config| {
            let microsoft = &mut config.third_party.providers.microsoft;
            microsoft.secret = None;
            microsoft.certificate = Some(gatehouse_core::config::CertificateConfig {
                private_key: gatehouse_core::config::Secret::new(uploaded.private_key_pem.clone()),
                certificate: uploaded.certificate_pem.clone(),
                algorithm: algorithm.into(),
            });
        })
        .await;
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        assert!(query(&landing, "hanko_token").is_some(), "{algorithm}: {landing}");
        assert_eq!(setup.entra.last_token_request().unwrap().client_auth, ClientAuth::Assertion);
    }

    let unknown = generate_self_signed("Not uploaded", 365, now).unwrap();
    let setup = Setup::start_with_certificates(backend, registered, |config| {
        let microsoft = &mut config.third_party.providers.microsoft;
        microsoft.secret = None;
        microsoft.certificate = Some(gatehouse_core::config::CertificateConfig {
            private_key: gatehouse_core::config::Secret::new(unknown.private_key_pem.clone()),
            certificate: unknown.certificate_pem.clone(),
            algorithm: "PS256".into(),
        });
    })
    .await;
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "server_error", "a certificate Azure does not know is refused");
}

async fn bad_id_tokens_are_refused(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let wrong_issuer = serde_json::Map::from_iter([(
        "iss".to_owned(),
        json!(format!("{}/{}/v2.0", setup.entra.base_url(), "00000000-0000-0000-0000-000000000001")),
    )]);
    // With an `iss` to match, so that the key's issuer scoping lets it through to the claim rules.
    let bad_tid = serde_json::Map::from_iter([
        ("tid".to_owned(), json!("not-a-guid")),
        ("iss".to_owned(), json!(format!("{}/not-a-guid/v2.0", setup.entra.base_url()))),
    ]);
    // Each bad token, and the rule that must refuse it (named in the error description).
    let tweaks = vec![
        ("alg none (no such algorithm to jsonwebtoken)", IdTokenTweak::AlgNone, "is malformed"),
        ("HS256 with the public key", IdTokenTweak::Hs256WithPublicKey, "not signed with RS256"),
        ("unknown kid", IdTokenTweak::UnknownKid, "a key the provider does not publish"),
        ("foreign key", IdTokenTweak::SignedByForeignKey, "signature does not verify"),
        ("no kid", IdTokenTweak::NoKid, "names no signing key"),
        ("expired", IdTokenTweak::Expired, "has expired"),
        ("not yet valid", IdTokenTweak::NotYetValid, "not valid yet"),
        ("wrong audience", IdTokenTweak::WrongAudience, "aud does not name this app"),
        ("wrong nonce", IdTokenTweak::WrongNonce, "nonce does not match"),
        ("iss of another tenant", IdTokenTweak::Claims(wrong_issuer), "may not sign for its issuer"),
        ("tid not a GUID", IdTokenTweak::Claims(bad_tid), "tid is not a tenant GUID"),
        ("no nonce", IdTokenTweak::RemoveClaims(vec!["nonce".into()]), "nonce does not match"),
    ];
    for (name, tweak, rule) in tweaks {
        setup.entra.tweak_next_id_token(tweak);
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        let (code, description) = error_of(&landing);
        assert_eq!(code, "invalid_request", "{name}: {landing}");
        assert!(description.starts_with("could not retrieve user data from provider: "), "{name}: {description}");
        assert!(description.contains(rule), "{name} must be refused by the rule {rule:?}, not: {description}");
        assert!(query(&landing, "hanko_token").is_none(), "{name}");
    }
    assert_eq!(setup.server.store.count_users().await.unwrap(), 0);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "an honest token still works: {landing}");
}

async fn keys_are_cached_and_rollover_is_followed(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    for _ in 0..3 {
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        assert!(query(&landing, "hanko_token").is_some());
    }
    assert_eq!(setup.entra.jwks_requests(), 1, "no JWKS fetch per sign-in in steady state");
    assert_eq!(setup.entra.token_requests(), 3, "exactly one call to Microsoft per sign-in");
    setup.entra.rotate_keys();
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "a token signed with a new key works: {landing}");
    assert_eq!(setup.entra.jwks_requests(), 2, "the unknown kid caused exactly one refetch");
    for _ in 0..3 {
        setup.entra.tweak_next_id_token(IdTokenTweak::UnknownKid);
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        assert_eq!(error_of(&landing).0, "invalid_request");
    }
    assert_eq!(setup.entra.jwks_requests(), 2, "made-up kids within 30 s of the last refetch cause no request");
    setup.server.clock.advance(UNKNOWN_KID_REFETCH_INTERVAL);
    setup.entra.tweak_next_id_token(IdTokenTweak::UnknownKid);
    assert_eq!(error_of(&setup.browser().sign_in(&format!("{APP}/")).await).0, "invalid_request");
    assert_eq!(setup.entra.jwks_requests(), 3, "30 s later an unknown kid may refetch once more");
}

async fn a_key_with_a_fixed_issuer_signs_only_for_it(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let consumer_issuer = format!("{}/{CONSUMERS}/v2.0", setup.entra.base_url());
    let kid = setup.entra.add_key_with_fixed_issuer(&consumer_issuer);
    setup.entra.sign_next_with(&kid);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "invalid_request", "an org-tenant token signed by a consumer-only key");

    let mut personal = FakeUser::new("someone@outlook.com");
    personal.tid = CONSUMERS.into();
    setup.entra.queue_user(personal);
    setup.entra.sign_next_with(&kid);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "the consumer key signs consumer tokens: {landing}");
}

/// The tenant is sealed into the state at the start: a sign-in started under one tenant setting is refused when the
/// setting changed before the callback (an admin narrowing the tenant must not let started sign-ins through).
async fn a_tenant_change_during_a_sign_in_refuses_it(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut browser = setup.browser();
    let authorize = browser.start(&format!("{APP}/")).await;
    let callback = browser.at_provider(&authorize).await;
    let (status, body) = crate::admin::admin_json(
        &setup.server,
        reqwest::Method::PUT,
        "/identity-providers",
        Some(json!({ "providers": { "microsoft": { "tenant": FAKE_ORG_TENANT } } })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let landing = browser.callback(&callback).await;
    assert_eq!(
        error_of(&landing),
        ("invalid_request".into(), "the provider's tenant setting changed during the sign-in".into())
    );
    assert_eq!(setup.entra.token_requests(), 0, "refused before the code is redeemed");
}

async fn tenant_modes_hold(backend: Backend) {
    let consumers =
        Setup::start(backend, |config| config.third_party.providers.microsoft.tenant = "consumers".into()).await;
    let landing = consumers.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "invalid_request", "an org account on a consumers-only app");

    let organizations =
        Setup::start(backend, |config| config.third_party.providers.microsoft.tenant = "organizations".into()).await;
    let mut personal = FakeUser::new("someone@outlook.com");
    personal.tid = CONSUMERS.into();
    organizations.entra.queue_user(personal);
    let landing = organizations.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "invalid_request", "a personal account on an organizations-only app");

    let listed = Setup::start(backend, |config| {
        config.third_party.providers.microsoft.allowed_tenants = vec!["00000000-0000-0000-0000-0000000000aa".into()];
    })
    .await;
    let landing = listed.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "invalid_request", "a tenant outside allowed_tenants");
    let mut member = FakeUser::new("a@fabrikam.com");
    member.tid = "00000000-0000-0000-0000-0000000000aa".into();
    listed.entra.queue_user(member);
    let landing = listed.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");

    let single =
        Setup::start(backend, |config| config.third_party.providers.microsoft.tenant = FAKE_ORG_TENANT.into()).await;
    let url = single.browser().start(&format!("{APP}/")).await;
    assert!(url.path().starts_with(&format!("/{FAKE_ORG_TENANT}/")));
    let landing = single.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");
}

async fn email_comes_from_upn_then_verified_email(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut with_upn = FakeUser::new("other@contoso.com");
    with_upn.upn = Some("Adele.Vance@Contoso.com".into());
    with_upn.xms_edov = Some(json!(false));
    setup.entra.queue_user(with_upn);
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    browser.exchange(&landing).await;
    let server = &setup.server;
    let me = server.me(&browser.cookies["hanko"]).await;
    assert_eq!(me["emails"][0]["address"], "adele.vance@contoso.com", "upn wins and counts as verified");

    let mut guest = FakeUser::new("guest@fabrikam.com");
    guest.upn = Some("guest_fabrikam.com#EXT#@contoso.onmicrosoft.com".into());
    guest.xms_edov = Some(json!("1"));
    setup.entra.queue_user(guest);
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    browser.exchange(&landing).await;
    let me = server.me(&browser.cookies["hanko"]).await;
    assert_eq!(me["emails"][0]["address"], "guest@fabrikam.com", "a guest UPN is not an email");

    for edov in [json!(false), json!("0"), json!("false")] {
        let mut unverified = FakeUser::new("eve@fabrikam.com");
        unverified.xms_edov = Some(edov.clone());
        setup.entra.queue_user(unverified);
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        assert_eq!(error_of(&landing).0, "unverified_email", "xms_edov {edov}");
    }
    let mut nothing = FakeUser::new("x@example.com");
    nothing.email = None;
    setup.entra.queue_user(nothing);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    let (code, description) = error_of(&landing);
    assert_eq!(code, "invalid_request");
    assert!(description.ends_with("carries no usable email (neither upn nor email)"), "{description}");
}

async fn existing_users_are_linked_only_with_proof(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    setup.server.create_user("megan@contoso.com").await;
    setup.entra.set_default_user(FakeUser::new("megan@contoso.com"));
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "user_conflict", "linking is off by default");

    let linking = Setup::start(backend, |config| {
        config.third_party.providers.microsoft.allow_linking = true;
        config.email.require_verification = false;
    })
    .await;
    let existing = linking.server.create_user("megan@contoso.com").await;
    linking.entra.queue_user(FakeUser::new("megan@contoso.com").without_proof());
    let landing = linking.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "user_conflict", "xms_edov absent is no proof of ownership (nOAuth)");

    linking.entra.queue_user(FakeUser::new("megan@contoso.com").with_xms_edov(true));
    let mut browser = linking.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    let linked = browser.exchange(&landing).await.json::<Value>().await.unwrap();
    assert_eq!(linked["user_id"], json!(existing), "linked to the existing user");
    assert!(audit_kinds(&linking.server).await.contains(&"thirdparty_linking_succeeded".to_owned()));
}

async fn a_changed_email_follows_hankos_rules(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.email.limit = 2;
        config.rate_limiter.enabled = false;
    })
    .await;
    setup.server.create_user("taken@contoso.com").await;
    let mut person = FakeUser::new("first@contoso.com");
    setup.entra.queue_user(person.clone());
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    let user_id = browser.exchange(&landing).await.json::<Value>().await.unwrap()["user_id"].clone();

    person.email = Some("taken@contoso.com".into());
    setup.entra.queue_user(person.clone());
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    let signed_in = browser.exchange(&landing).await.json::<Value>().await.unwrap();
    assert_eq!(signed_in["user_id"], user_id, "the identity still reaches its own account (Hanko: multiple_accounts)");
    let me = setup.server.me(&browser.cookies["hanko"]).await;
    assert_eq!(me["emails"].as_array().unwrap().len(), 1, "another user's address, proven as strongly, is left alone");

    person.email = Some("second@contoso.com".into());
    setup.entra.queue_user(person.clone());
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    let again = browser.exchange(&landing).await.json::<Value>().await.unwrap();
    assert_eq!(again["user_id"], user_id, "a new email is added to the same user");
    let server = &setup.server;
    let me = server.me(&browser.cookies["hanko"]).await;
    let addresses: Vec<&str> =
        me["emails"].as_array().unwrap().iter().map(|e| e["address"].as_str().unwrap()).collect();
    assert_eq!(addresses, vec!["first@contoso.com", "second@contoso.com"]);
    assert_eq!(me["emails"][0]["is_primary"], true, "the primary email does not change");

    person.email = Some("third@contoso.com".into());
    setup.entra.queue_user(person);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "email_maxnum");

    // The legacy SDK's `email.delete`: a secondary address goes, the primary one stays (409, as in Hanko).
    let token = &browser.cookies["hanko"];
    let delete = |email: &Value| {
        let path = format!("/emails/{}", email["id"].as_str().unwrap());
        server.client.delete(server.url(&path)).bearer_auth(token).send()
    };
    assert_eq!(delete(&me["emails"][0]).await.unwrap().status(), 409);
    assert_eq!(delete(&me["emails"][1]).await.unwrap().status(), 204);
    assert_eq!(delete(&me["emails"][1]).await.unwrap().status(), 404, "gone");
    let emails: Value = server.get_json("/emails", Some(token)).await;
    assert_eq!(emails.as_array().unwrap().len(), 1);
    assert_eq!(emails[0]["address"], "first@contoso.com");
}

async fn signup_can_be_disabled(backend: Backend) {
    let setup = Setup::start(backend, |config| config.account.allow_signup = false).await;
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "signup_disabled");
}

async fn concurrent_first_logins_make_one_user(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.database.max_connections = 10;
        config.rate_limiter.callback_limits.tokens = 100;
    })
    .await;
    let user = FakeUser::new("rush@contoso.com");
    setup.entra.set_default_user(user);
    let mut callbacks = Vec::new();
    for _ in 0..50 {
        let mut browser = setup.browser();
        let authorize = browser.start(&format!("{APP}/")).await;
        let callback = browser.at_provider(&authorize).await;
        callbacks.push((browser.cookies, callback));
    }
    let server = &setup.server;
    let tasks = callbacks.into_iter().map(|(cookies, callback)| {
        let client = server.client.clone();
        let mut url = Url::parse(&server.url("/thirdparty/callback")).unwrap();
        url.set_query(callback.query());
        let cookie = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        tokio::spawn(async move {
            let response = client.get(url).header("cookie", cookie).send().await.unwrap();
            Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
        })
    });
    let landings: Vec<Url> = futures_join(tasks).await;
    let failures: Vec<_> = landings.iter().filter(|l| query(l, "hanko_token").is_none()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(server.store.count_users().await.unwrap(), 1);
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.unwrap());
    }
    out
}

async fn one_time_tokens_are_single_use(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    assert_eq!(browser.exchange(&landing).await.status(), 200);
    let again = browser.exchange(&landing).await;
    assert_eq!(again.status(), 404);
    assert_eq!(again.json::<Value>().await.unwrap(), json!({"code": 404, "message": "token not found"}));
    let server = &setup.server;
    let user = server.create_user("late@example.com").await;
    let now = server.clock.now();
    let expired = gatehouse_store::NewToken {
        id: uuid::Uuid::new_v4().into(),
        user_id: user,
        value_hash: gatehouse_app::thirdparty::hash("expired-token"),
        identity_id: None,
        code_verifier_hash: None,
        is_flow: false,
        user_created: false,
        created_at: now - Duration::from_secs(120),
        expires_at: now - Duration::from_secs(60),
        directory: None,
    };
    server.store.insert_token(&expired).await.unwrap();
    let late = server.client.post(server.url("/token")).json(&json!({"value": "expired-token"})).send().await.unwrap();
    assert_eq!(late.status(), 422);
    assert_eq!(late.json::<Value>().await.unwrap()["message"], "token has expired");
}

async fn client_verifier_binds_the_token(backend: Backend) {
    let setup = Setup::start(backend, |config| config.rate_limiter.enabled = false).await;
    let verifier = gatehouse_oidc::pkce::new_verifier();
    let start = || {
        setup.server.state.third_party().start(gatehouse_app::thirdparty::StartRequest {
            provider: "microsoft",
            redirect_to: Some("https://app.example.com/"),
            client_verifier: Some(verifier.clone()),
            ..Default::default()
        })
    };
    let started = start().unwrap();
    assert!(started.browser_binding.is_none(), "a client-held verifier replaces the cookie binding");
    let browser = setup.browser();
    let callback = browser.at_provider(&started.authorize_url).await;
    let mut browser = setup.browser();
    let landing = browser.callback(&callback).await;
    let token = query(&landing, "hanko_token").unwrap();
    let server = &setup.server;
    let without = server.client.post(server.url("/token")).json(&json!({"value": token})).send().await.unwrap();
    assert_eq!(without.status(), 400, "the token needs its verifier");

    let started = start().unwrap();
    let callback = browser.at_provider(&started.authorize_url).await;
    let landing = browser.callback(&callback).await;
    let token = query(&landing, "hanko_token").unwrap();
    let with =
        server.client.post(server.url("/token")).json(&json!({"value": token, "code_verifier": verifier})).send();
    assert_eq!(with.await.unwrap().status(), 200);
}

async fn form_post_callbacks_answer_303(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut browser = setup.browser();
    let authorize = browser.start(&format!("{APP}/")).await;
    let callback = browser.at_provider(&authorize).await;
    let form: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    let server = &setup.server;
    let response = server
        .client
        .post(server.url("/thirdparty/callback"))
        .header("cookie", browser.cookie_header())
        // Microsoft's page posts this form: a cross-site write that the CSRF guard must let through.
        .header("origin", "https://login.microsoftonline.com")
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let landing = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");
}

both_backends!(
    a_refusal_for_missing_admin_consent_says_whom_to_ask,
    sign_up_then_sign_in_is_the_same_user,
    the_authorize_request_is_complete,
    disallowed_targets_are_refused_before_anything_happens,
    a_state_works_once_and_only_in_its_browser,
    expired_or_forged_states_go_to_the_error_url,
    provider_errors_are_passed_through,
    token_endpoint_failures_never_leak,
    client_secret_basic_works,
    a_refused_secret_fails_over_to_the_next,
    a_certificate_authenticates_instead_of_a_secret,
    bad_id_tokens_are_refused,
    keys_are_cached_and_rollover_is_followed,
    a_key_with_a_fixed_issuer_signs_only_for_it,
    tenant_modes_hold,
    a_tenant_change_during_a_sign_in_refuses_it,
    email_comes_from_upn_then_verified_email,
    existing_users_are_linked_only_with_proof,
    a_changed_email_follows_hankos_rules,
    signup_can_be_disabled,
    concurrent_first_logins_make_one_user,
    one_time_tokens_are_single_use,
    client_verifier_binds_the_token,
    form_post_callbacks_answer_303,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_codes_and_tokens_never_reach_the_logs() {
    crate::logs::captured();
    let setup = Setup::start(Backend::Sqlite, |config| config.log.level = "debug".into()).await;
    let mut browser = setup.browser();
    let authorize = browser.start(&format!("{APP}/")).await;
    let callback = browser.at_provider(&authorize).await;
    let landing = browser.callback(&callback).await;
    let response = browser.exchange(&landing).await;
    assert_eq!(response.status(), 200);
    setup.entra.tweak_next_id_token(IdTokenTweak::WrongAudience);
    let failed = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&failed).0, "invalid_request");
    let logs = crate::logs::text();
    assert!(logs.contains("ID token refused"), "the failure is logged (the capture works)");
    let code = query(&callback, "code").unwrap();
    let state = query(&callback, "state").unwrap();
    let token = query(&landing, "hanko_token").unwrap();
    for (what, secret) in [
        ("client secret", CLIENT_SECRET),
        ("code", &code),
        ("state", &state),
        ("one-time token", &token),
        ("a JWT", "eyJ"),
    ] {
        assert!(!logs.contains(secret), "{what} found in the logs");
    }
}

#[tokio::test]
async fn no_allowed_target_means_a_plain_400_page() {
    let server = TestServer::start(Backend::Sqlite, |_| {}).await;
    let response = server.client.get(server.url("/thirdparty/callback?state=garbage&code=x")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}
