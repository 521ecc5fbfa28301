//! Microsoft ID-token verification with a warm JWKS cache (the steady state of every sign-in): signature,
//! key issuer, Microsoft's claim rules, email choice. `cargo bench -p gatehouse-oidc`

use gatehouse_core::clock::{Clock, SystemClock, Timestamp};
use std::time::Duration;

use gatehouse_core::{
    config::{ClientAuthMethod, ClientSecret, Secret},
    microsoft::claims::TenantMode,
};
use gatehouse_oidc::{
    microsoft::{MicrosoftClient, MicrosoftSettings},
    pkce,
};
use gatehouse_testkit::fake_entra::{FakeEntra, FakeEntraOptions, FakeUser};

const CALLBACK: &str = "https://auth.example.com/thirdparty/callback";

fn main() {
    divan::main();
}

/// A client, a real ID token from the fake Entra ID, and the nonce it carries.
fn setup(runtime: &tokio::runtime::Runtime) -> (MicrosoftClient, String) {
    runtime.block_on(async {
        let fake = FakeEntra::start(FakeEntraOptions {
            client_id: "client".into(),
            client_secrets: vec!["secret".into()],
            redirect_uris: vec![CALLBACK.into()],
            certificates: Vec::new(),
        })
        .await;
        fake.set_default_user(FakeUser::new("megan@contoso.com").with_xms_edov(true));
        let client = MicrosoftClient::new(
            MicrosoftSettings {
                client_id: "client".into(),
                client_secrets: vec![ClientSecret { value: Secret::new("secret"), expires_at: None }],
                certificates: Vec::new(),
                client_auth: ClientAuthMethod::ClientSecretPost,
                redirect_url: CALLBACK.into(),
                cloud_instance: fake.base_url(),
                tenant_mode: TenantMode::Common,
                allowed_tenants: vec![],
                prompt: None,
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                graph_base: fake.base_url(),
                read_groups: false,
                read_tenant_name: false,
                profile_attributes: Vec::new(),
            },
            std::sync::Arc::new(SystemClock),
        )
        .expect("client");
        let verifier = pkce::new_verifier();
        let authorize = client.authorize_url("state", "bench-nonce", &pkce::challenge(&verifier));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http");
        let redirect = http.get(authorize).send().await.expect("authorize");
        let location = url::Url::parse(redirect.headers()["location"].to_str().expect("location")).expect("url");
        let code = location.query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
        let id_token = client.redeem(&code, &verifier).await.expect("redeem").id_token;
        client
            .verify_id_token(&id_token, "bench-nonce", now())
            .await
            .expect("a first verification warms the JWKS cache");
        (client, id_token)
    })
}

fn now() -> Timestamp {
    SystemClock.now()
}

#[divan::bench]
fn verify_with_cached_jwks(bencher: divan::Bencher) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (client, id_token) = setup(&runtime);
    let fetches = client.jwks().fetch_count();
    bencher.bench(|| {
        runtime.block_on(client.verify_id_token(divan::black_box(&id_token), "bench-nonce", now())).expect("valid")
    });
    assert_eq!(client.jwks().fetch_count(), fetches, "no JWKS fetch during the benchmark");
}
