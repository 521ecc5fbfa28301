//! The admin API over HTTP on its own listener: keys, identity-provider settings that apply on every instance
//! without a restart, credential rotation, users and the audit log.

use std::time::Duration;

use gatehouse_app::admin_keys;
use gatehouse_core::config::MICROSOFT_CLOUD;
use gatehouse_store::AuditLogFilter;
use gatehouse_testkit::{Backend, TEST_ADMIN_KEY, TestServer, both_backends, fake_entra::FakeCertificate};
use reqwest::Method;
use serde_json::{Value, json};

use crate::thirdparty::{APP, CALLBACK, CLIENT_SECRET, Setup, query};

pub async fn admin_json(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = server.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn settings(server: &TestServer) -> Value {
    let (status, body) = admin_json(server, Method::GET, "/identity-providers", None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The providers the public API offers right now, as the legacy config endpoint lists them.
async fn public_providers(server: &TestServer) -> Value {
    server.get_json("/.well-known/config", None).await["providers"].clone()
}

/// Microsoft configured in the file but switched off, and without a secret: the console completes it.
async fn disabled_in_the_file(backend: Backend) -> Setup {
    Setup::start(backend, |config| {
        let microsoft = &mut config.third_party.providers.microsoft;
        microsoft.enabled = false;
        microsoft.secret = None;
    })
    .await
}

async fn every_admin_request_needs_a_key(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let admin = server.admin_url.clone().unwrap();
    for path in ["/identity-providers", "/users", "/audit-logs", "/openapi.json", "/metrics"] {
        let anonymous = server.client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body, json!({ "code": 401, "message": "Unauthorized" }));
        let wrong = server.client.get(format!("{admin}{path}")).bearer_auth("gha_not-a-key").send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
    }
    let public = server.client.get(server.url("/identity-providers")).bearer_auth(TEST_ADMIN_KEY).send().await.unwrap();
    assert_eq!(public.status(), 404, "the admin API is not on the public listener");

    let console = server.client.get(format!("{admin}/")).send().await.unwrap();
    assert_eq!(console.status(), 200, "the console page itself loads without a key: it asks for one");
    assert!(console.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    for asset in ["/assets/console.js", "/assets/console.css"] {
        assert_eq!(server.client.get(format!("{admin}{asset}")).send().await.unwrap().status(), 200);
    }

    let (record_key, record) = admin_keys::generate("ops", gatehouse_core::clock::Timestamp::from_millis(1));
    server.store.insert_admin_key(&record).await.unwrap();
    let with = |key: &str| server.client.get(format!("{admin}/users")).bearer_auth(key.to_owned()).send();
    assert_eq!(with(&record_key).await.unwrap().status(), 200, "keys from the database work");
    server.store.revoke_admin_key(record.id, gatehouse_core::clock::Timestamp::from_millis(1)).await.unwrap();
    assert_eq!(with(&record_key).await.unwrap().status(), 401, "a revoked key is refused at once");
    let used = server.store.list_admin_keys().await.unwrap();
    assert!(used[0].last_used_at.is_some());

    let (status, spec) = admin_json(&server, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths: Vec<&str> = spec["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for path in [
        "/identity-providers",
        "/identity-providers/microsoft/secrets",
        "/identity-providers/microsoft/secrets/{id}",
        "/identity-providers/microsoft/certificates",
        "/identity-providers/microsoft/certificates/{id}",
        "/users",
        "/users/{id}",
        "/users/{id}/sessions",
        "/users/{id}/sessions/{session_id}",
        "/users/{id}/identities/{identity_id}",
        "/audit-logs",
        "/metrics",
    ] {
        assert!(paths.contains(&path), "{path} is documented: {paths:?}");
    }
    assert_eq!(spec["components"]["securitySchemes"]["admin_key"]["scheme"], "bearer");
}

async fn no_admin_key_no_admin_listener(backend: Backend) {
    let db = gatehouse_testkit::TestDb::new(backend).await;
    let mut config = gatehouse_testkit::test_config(&db);
    config.server.admin.api_keys.clear();
    let store = db.store().await;
    store.migrate().await.unwrap();
    let error =
        gatehouse_api::Application::build(std::sync::Arc::new(config.clone()), store.clone()).await.unwrap_err();
    assert!(error.to_string().contains("gatehouse admin-key new"), "{error}");
    config.server.admin.enabled = false;
    let app = gatehouse_api::Application::build(std::sync::Arc::new(config), store).await.unwrap();
    assert!(app.admin_addr().is_none(), "with the admin API off, the rest still starts");
}

async fn settings_saved_in_the_console_apply_without_restart(backend: Backend) {
    let setup = disabled_in_the_file(backend).await;
    let server = &setup.server;
    let before = settings(server).await;
    assert_eq!(before["version"], 0);
    assert_eq!(before["redirect_url"], "https://auth.gatehouse.test/thirdparty/callback");
    assert_eq!(before["providers"]["microsoft"]["enabled"], false);
    assert_eq!(public_providers(server).await, json!([]));

    let (status, body) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "providers": { "microsoft": { "enabled": true } } })),
    )
    .await;
    assert_eq!(status, 422, "enabling without a credential is refused: {body}");
    assert_eq!(body["errors"][0]["field"], "providers.microsoft.secrets");

    let (status, secret) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/secrets",
        Some(json!({ "value": CLIENT_SECRET, "expires_at": "2099-12-31" })),
    )
    .await;
    assert_eq!(status, 201, "{secret}");
    assert_eq!(secret["hint"], format!("…{}", &CLIENT_SECRET[CLIENT_SECRET.len() - 4..]));
    assert_eq!(secret["source"], "console");
    assert_eq!(secret["expires_at"], "2099-12-31T23:59:59Z");
    assert!(!secret.to_string().contains(CLIENT_SECRET), "the secret is never returned");

    let version = settings(server).await["version"].as_i64().unwrap();
    let (status, saved) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({
            "version": version,
            "allowed_redirect_urls": [format!("{APP}/**"), format!("{APP}")],
            "providers": { "microsoft": { "enabled": true, "prompt": "select_account" } },
        })),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], version + 1);
    assert_eq!(saved["providers"]["microsoft"]["configured"], true);
    assert_eq!(public_providers(server).await, json!(["Microsoft"]), "in force at once, no restart");
    let landing = setup.browser().sign_in(&format!("{APP}/home")).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");
    assert_eq!(setup.entra.last_authorize_query().unwrap()["prompt"], "select_account");

    let (status, stale) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "version": version, "providers": { "microsoft": { "enabled": false } } })),
    )
    .await;
    assert_eq!(status, 409, "a save based on an old version is refused: {stale}");

    let (status, invalid) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({
            "allowed_redirect_urls": [format!("{APP}/**"), "ftp://files.example.com"],
            "error_redirect_url": "https://app.example.com/",
            "providers": { "microsoft": { "tenant": "not a tenant!" } },
        })),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        invalid["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["error_redirect_url", "allowed_redirect_urls[1]", "providers.microsoft.tenant"]);
    assert!(invalid["errors"][1]["message"].as_str().unwrap().contains("http"), "{invalid}");
    assert_eq!(settings(server).await["version"], version + 1, "nothing was saved");
    let (status, same) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "providers": { "microsoft": { "enabled": true } } })),
    )
    .await;
    assert_eq!((status, &same["version"]), (200, &json!(version + 1)), "saving the same values saves nothing");

    let stored = server.store.load_settings("identity_providers").await.unwrap().unwrap();
    assert!(!stored.data.contains(CLIENT_SECRET), "the secret is stored encrypted");
    let audit = server
        .store
        .list_audit_logs(&AuditLogFilter { limit: 50, ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.kind.starts_with("admin_"))
        .collect::<Vec<_>>();
    let kinds: Vec<&str> = audit.iter().map(|entry| entry.kind.as_str()).collect();
    assert_eq!(kinds, ["admin_settings_updated", "admin_secret_added"], "failed attempts change nothing");
    let details: Value = serde_json::from_str(audit[0].details.as_deref().unwrap()).unwrap();
    assert_eq!(
        details["changed"],
        json!(["allowed_redirect_urls", "providers.microsoft.enabled", "providers.microsoft.prompt"])
    );
    assert!(details["admin_key"]["id"].as_str().unwrap().starts_with("config:"));
    assert!(audit.iter().all(|entry| !entry.details.as_deref().unwrap_or("").contains(CLIENT_SECRET)));

    let (status, off) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "providers": { "microsoft": { "enabled": false } } })),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(public_providers(server).await, json!([]));

    let (_, overridden) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "error_redirect_url": format!("{APP}/oops") })),
    )
    .await;
    assert_eq!(overridden["error_redirect_url"], format!("{APP}/oops"));
    let (_, back) =
        admin_json(server, Method::PUT, "/identity-providers", Some(json!({ "error_redirect_url": null }))).await;
    assert_eq!(back["error_redirect_url"], format!("{APP}/error"), "null goes back to the file's value");
}

/// The redirect URL and the cloud are set in the console alone: sent to Microsoft from the next sign-in on, and
/// removed again with `null`.
async fn redirect_url_and_cloud_instance_are_set_in_the_console(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.third_party.redirect_url = None;
        let microsoft = &mut config.third_party.providers.microsoft;
        microsoft.enabled = false;
        microsoft.cloud_instance = MICROSOFT_CLOUD.into();
    })
    .await;
    let server = &setup.server;
    let before = settings(server).await;
    assert_eq!((&before["redirect_url"], &before["config_redirect_url"]), (&Value::Null, &Value::Null));
    let microsoft = &before["providers"]["microsoft"];
    assert_eq!(
        (&microsoft["cloud_instance"], &microsoft["config_cloud_instance"]),
        (&json!(MICROSOFT_CLOUD), &json!(MICROSOFT_CLOUD))
    );

    let put = |body: Value| admin_json(server, Method::PUT, "/identity-providers", Some(body));
    let (status, refused) = put(json!({ "providers": { "microsoft": { "enabled": true } } })).await;
    assert_eq!((status, &refused["errors"][0]["field"]), (422, &json!("redirect_url")), "{refused}");
    let (status, invalid) = put(json!({
        "redirect_url": "/thirdparty/callback",
        "providers": { "microsoft": { "cloud_instance": "http://login.example.com" } },
    }))
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        invalid["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["redirect_url", "providers.microsoft.cloud_instance"], "{invalid}");

    let fake = setup.entra.base_url();
    let (status, saved) = put(json!({
        "redirect_url": "https://wrong.gatehouse.test/thirdparty/callback",
        "providers": { "microsoft": { "enabled": true, "cloud_instance": fake } },
    }))
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["providers"]["microsoft"]["configured"], true);
    let mut browser = setup.browser();
    let authorize = browser.start(&format!("{APP}/home")).await;
    assert!(authorize.as_str().starts_with(&fake), "the console's cloud is used: {authorize}");
    let refused = server.client.get(authorize).send().await.unwrap();
    assert_ne!(refused.status(), 302, "the fake refuses a redirect_uri the app registration does not list");

    let (status, _) = put(json!({ "redirect_url": CALLBACK })).await;
    assert_eq!(status, 200);
    let landing = setup.browser().sign_in(&format!("{APP}/home")).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");
    assert_eq!(setup.entra.last_authorize_query().unwrap()["redirect_uri"], CALLBACK);

    let (status, back) = put(
        json!({ "redirect_url": null, "providers": { "microsoft": { "enabled": false, "cloud_instance": null } } }),
    )
    .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["redirect_url"], Value::Null, "null goes back to the file's (none)");
    assert_eq!(back["providers"]["microsoft"]["cloud_instance"], MICROSOFT_CLOUD);
    let audit = server.store.list_audit_logs(&AuditLogFilter { limit: 50, ..Default::default() }).await.unwrap();
    let changes: Vec<Value> = audit
        .iter()
        .filter(|entry| entry.kind == "admin_settings_updated")
        .map(|entry| serde_json::from_str::<Value>(entry.details.as_deref().unwrap()).unwrap()["changed"].clone())
        .collect();
    assert_eq!(
        changes,
        [
            json!(["redirect_url", "providers.microsoft.enabled", "providers.microsoft.cloud_instance"]),
            json!(["redirect_url"]),
            json!(["redirect_url", "providers.microsoft.enabled", "providers.microsoft.cloud_instance"]),
        ],
        "newest first"
    );
}

async fn settings_reach_every_instance_within_seconds(backend: Backend) {
    let setup = disabled_in_the_file(backend).await;
    let a = &setup.server;
    let b = TestServer::start_with(a.state.config().clone()).await;
    assert_eq!(public_providers(&b).await, json!([]));
    let (status, _) = admin_json(
        a,
        Method::POST,
        "/identity-providers/microsoft/secrets",
        Some(json!({ "value": CLIENT_SECRET, "expires_at": null })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = admin_json(
        a,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "providers": { "microsoft": { "enabled": true } } })),
    )
    .await;
    assert_eq!(status, 200);
    let mut waited = Duration::ZERO;
    while public_providers(&b).await != json!(["Microsoft"]) {
        assert!(waited < Duration::from_secs(5), "instance B never applied A's settings");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(b.state.settings_version(), a.state.settings_version());
}

async fn secrets_rotate_through_the_api(backend: Backend) {
    // The file's secret was revoked in Azure; the new one is added in the console, no restart.
    let setup = Setup::start(backend, |config| {
        config.third_party.providers.microsoft.secret = Some(gatehouse_core::config::Secret::new("revoked~secret"));
    })
    .await;
    let server = &setup.server;
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(crate::thirdparty::error_of(&landing).0, "server_error", "Microsoft refuses the revoked secret");
    let (status, added) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/secrets",
        Some(json!({ "value": CLIENT_SECRET, "expires_at": "2099-01-31" })),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let listed = settings(server).await["providers"]["microsoft"]["secrets"].clone();
    let sources: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["console", "config"], "the new secret comes first");
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "the new secret is used: {landing}");
    assert_eq!(server.state.third_party().microsoft().unwrap().credential_failovers(), 0);

    let config_id = listed[1]["id"].as_str().unwrap();
    let (status, _) =
        admin_json(server, Method::DELETE, &format!("/identity-providers/microsoft/secrets/{config_id}"), None).await;
    assert_eq!(status, 409, "a secret from the file is removed in the file");
    let (status, bad) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/secrets",
        Some(json!({ "value": "x", "expires_at": "2001-01-01" })),
    )
    .await;
    assert_eq!((status, bad["errors"][0]["field"].as_str()), (422, Some("expires_at")));
    let (_, both) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/secrets",
        Some(json!({ "value": "", "expires_at": "soon" })),
    )
    .await;
    let fields: Vec<&str> = both["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["value", "expires_at"], "every problem at once");

    let response = server.admin(Method::GET, "/metrics").send().await.unwrap();
    let metrics = response.text().await.unwrap();
    let line =
        metrics.lines().find(|line| line.contains(&format!("id=\"{}\"", added["id"].as_str().unwrap()))).unwrap();
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(seconds > 365 * 86_400, "{line}");
    assert!(metrics.contains("gatehouse_credential_failovers_total{provider=\"microsoft\"} 0"), "{metrics}");
    // The refused secret's sign-in, then the new secret's sign-up; each answer of either listener is counted.
    for series in [
        "gatehouse_sign_ins_total{provider=\"microsoft\",outcome=\"server_error\"} 1",
        "gatehouse_sign_ins_total{provider=\"microsoft\",outcome=\"signed_up\"} 1",
        "gatehouse_sign_ins_total{provider=\"microsoft\",outcome=\"signed_in\"} 0",
    ] {
        assert!(metrics.lines().any(|line| line == series), "{series} in {metrics}");
    }
    for listener in ["public", "admin"] {
        let prefix = format!("gatehouse_http_responses_total{{listener=\"{listener}\",status=\"");
        let counted: u64 = metrics
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(counted >= 3, "{listener}: {metrics}");
    }

    let id = added["id"].as_str().unwrap();
    let (status, _) =
        admin_json(server, Method::DELETE, &format!("/identity-providers/microsoft/secrets/{id}"), None).await;
    assert_eq!(status, 204);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(crate::thirdparty::error_of(&landing).0, "server_error", "only the revoked file secret is left");
}

async fn certificates_are_added_pasted_or_generated(backend: Backend) {
    use gatehouse_crypto::certificate::generate_self_signed;
    let now = time::OffsetDateTime::now_utc();
    let uploaded = generate_self_signed("Gatehouse", 365, now).unwrap();
    let registered = vec![FakeCertificate::new(&uploaded.thumbprint_sha256, &uploaded.private_key_pem)];
    let setup = Setup::start_with_certificates(backend, registered, |_| {}).await;
    let server = &setup.server;
    let other = generate_self_signed("Other", 365, now).unwrap();
    let (status, mismatch) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/certificates",
        Some(json!({ "private_key": other.private_key_pem, "certificate": uploaded.certificate_pem })),
    )
    .await;
    assert_eq!((status, mismatch["errors"][0]["field"].as_str()), (422, Some("private_key")), "{mismatch}");
    let (_, garbage) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/certificates",
        Some(json!({ "private_key": "x", "certificate": "y" })),
    )
    .await;
    let fields: Vec<&str> =
        garbage["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["private_key", "certificate"]);

    let (status, pasted) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/certificates",
        Some(json!({ "private_key": uploaded.private_key_pem, "certificate": uploaded.certificate_pem })),
    )
    .await;
    assert_eq!(status, 201, "{pasted}");
    assert_eq!(pasted["thumbprint"], uploaded.thumbprint_sha256);
    assert_eq!(pasted["algorithm"], "PS256");
    assert!(!pasted.to_string().contains("PRIVATE KEY"));
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");
    assert_eq!(
        setup.entra.last_token_request().unwrap().client_auth,
        gatehouse_testkit::fake_entra::ClientAuth::Assertion,
        "the certificate is tried before the secret"
    );

    let (status, generated) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/certificates",
        Some(json!({ "generate": { "days": 90 } })),
    )
    .await;
    assert_eq!(status, 201, "{generated}");
    assert!(generated["certificate"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let days = generated["expires_in_seconds"].as_i64().unwrap() / 86_400;
    assert!((89..=90).contains(&days), "{generated}");
    let stored = server.store.load_settings("identity_providers").await.unwrap().unwrap();
    assert!(!stored.data.contains("PRIVATE KEY"), "private keys are stored encrypted");
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "not uploaded yet: refused, then the next credential works");
    assert_eq!(server.state.third_party().microsoft().unwrap().credential_failovers(), 1);

    let (status, bad_days) = admin_json(
        server,
        Method::POST,
        "/identity-providers/microsoft/certificates",
        Some(json!({ "generate": { "days": 0 } })),
    )
    .await;
    assert_eq!((status, bad_days["errors"][0]["field"].as_str()), (422, Some("generate.days")));
    let id = generated["id"].as_str().unwrap();
    let (status, _) =
        admin_json(server, Method::DELETE, &format!("/identity-providers/microsoft/certificates/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) =
        admin_json(server, Method::DELETE, &format!("/identity-providers/microsoft/certificates/{id}"), None).await;
    assert_eq!(status, 404);
    let count = settings(server).await["providers"]["microsoft"]["certificates"].as_array().unwrap().len();
    assert_eq!(count, 1);
}

async fn users_are_found_inspected_and_acted_on(backend: Backend) {
    let setup = Setup::start(backend, |config| config.session.enable_auth_token_header = true).await;
    let server = &setup.server;
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    let response = browser.exchange(&landing).await;
    let token = response.headers()["x-auth-token"].to_str().unwrap().to_owned();
    server.create_user("someone.else@example.org").await;

    let found = server.admin(Method::GET, "/users?email=CONTOSO&per_page=10").send().await.unwrap();
    assert_eq!(found.headers()["x-total-count"], "1");
    let users: Value = found.json().await.unwrap();
    let id = users[0]["id"].as_str().unwrap().to_owned();
    assert!(users[0]["email"].as_str().unwrap().ends_with("@contoso.com"), "{users}");
    let everyone = server.admin(Method::GET, "/users?page=1&per_page=1").send().await.unwrap();
    assert_eq!(everyone.headers()["x-total-count"], "2");
    assert_eq!(everyone.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);
    let wildcard = server.admin(Method::GET, "/users?email=%25").send().await.unwrap();
    assert_eq!(wildcard.headers()["x-total-count"], "0", "LIKE wildcards in the search are literal");

    let (status, user) = admin_json(server, Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(status, 200);
    let identity = &user["identities"][0];
    assert_eq!(identity["provider"], "microsoft");
    assert!(identity["tenant_id"].as_str().is_some_and(|tid| tid.len() == 36), "{user}");
    assert_eq!(user["sessions"].as_array().unwrap().len(), 1);
    let session_id = user["sessions"][0]["id"].as_str().unwrap();

    let (status, _) = admin_json(server, Method::DELETE, &format!("/users/{id}/sessions/{session_id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(server.get_json("/sessions/validate", Some(&token)).await["is_valid"], false, "revoked at once");
    let identity_id = identity["id"].as_str().unwrap();
    let (status, _) = admin_json(server, Method::DELETE, &format!("/users/{id}/identities/{identity_id}"), None).await;
    assert_eq!(status, 204);
    let (_, user) = admin_json(server, Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(user["identities"], json!([]));
    assert_eq!(admin_json(server, Method::DELETE, &format!("/users/{id}/sessions"), None).await.0, 204);
    assert_eq!(admin_json(server, Method::DELETE, &format!("/users/{id}"), None).await.0, 204);
    assert_eq!(admin_json(server, Method::GET, &format!("/users/{id}"), None).await.0, 404);
    assert_eq!(admin_json(server, Method::DELETE, &format!("/users/{id}"), None).await.0, 404);
    assert_eq!(admin_json(server, Method::GET, "/users?per_page=1000", None).await.0, 400);

    let log = server.admin(Method::GET, &format!("/audit-logs?user_id={id}&per_page=100")).send().await.unwrap();
    let entries: Value = log.json().await.unwrap();
    let kinds: Vec<&str> = entries.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "admin_user_deleted",
            "admin_sessions_revoked",
            "admin_identity_unlinked",
            "admin_sessions_revoked",
            "token_exchange_succeeded",
            "thirdparty_signup_succeeded"
        ],
        "newest first"
    );
    assert_eq!(entries[0]["details"]["admin_key"]["name"], "from configuration");
    let signups = server.admin(Method::GET, "/audit-logs?type=thirdparty_signup_succeeded").send().await.unwrap();
    assert_eq!(signups.headers()["x-total-count"], "1");
    let future = server.admin(Method::GET, "/audit-logs?from=2999-01-01T00:00:00Z").send().await.unwrap();
    assert_eq!(future.headers()["x-total-count"], "0");
    assert_eq!(admin_json(server, Method::GET, "/audit-logs?from=yesterday", None).await.0, 400);
    let (status, bad_id) = admin_json(server, Method::GET, "/users/not-a-uuid", None).await;
    assert_eq!(status, 400);
    assert!(bad_id["message"].as_str().unwrap().contains("UUID"), "the message says what is wrong: {bad_id}");
    let (status, bad_filter) = admin_json(server, Method::GET, "/audit-logs?user_id=nope", None).await;
    assert!(status == 400 && bad_filter["message"].as_str().unwrap().contains("user_id"), "{bad_filter}");
}

/// DNS rebinding: a page on another name, rebound to the admin listener's address, still sends its own `Host`,
/// so the console and the API refuse it; the listener's own address, `localhost` and configured names pass.
async fn admin_listener_answers_only_its_own_host_names(backend: Backend) {
    let server = TestServer::start(backend, |config| {
        config.server.admin.allowed_hosts = vec!["admin.internal".into()];
    })
    .await;
    let admin = server.admin_url.clone().expect("the admin API is on");
    let port = admin.rsplit(':').next().unwrap().to_owned();
    let get = |path: &'static str, host: String| {
        let request = server.admin(Method::GET, path).header("host", host);
        async move { request.send().await.unwrap() }
    };
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "admin.internal:8443".into()] {
        assert_eq!(get("/", host.clone()).await.status(), 200, "{host}");
        assert_eq!(get("/users", host.clone()).await.status(), 200, "{host}");
    }
    for host in [format!("rebound.example:{port}"), "rebound.example".into(), "127.0.0.1:1".into()] {
        for path in ["/", "/users"] {
            let response = get(path, host.clone()).await;
            assert_eq!(response.status(), 421, "{host}{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body, json!({"code": 421, "message": "Misdirected Request"}), "Hanko's error shape");
        }
    }
    let public = server.client.get(server.url("/health/alive")).header("host", "api.example.com").send();
    assert_eq!(public.await.unwrap().status(), 200, "the public listener serves any name");
}

/// An admin action names the user and the session (or identity): one of another user is not touched, even with a
/// real id, at the endpoint.
async fn the_admin_consent_url_is_made_for_any_tenant(backend: Backend) {
    let setup = disabled_in_the_file(backend).await;
    let server = &setup.server;
    let consent = |query: &'static str| async move {
        admin_json(server, Method::GET, &format!("/identity-providers/microsoft/admin-consent{query}"), None).await
    };
    let cloud = setup.entra.base_url();
    let (status, body) = consent("").await;
    assert_eq!(status, 200, "a provider still disabled can be approved first: {body}");
    assert_eq!(body["tenant"], "organizations", "the configured `common`: the administrator's own tenant");
    let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
    assert_eq!(url.as_str().split('?').next().unwrap(), format!("{cloud}/organizations/v2.0/adminconsent"));
    assert_eq!(query(&url, "client_id").as_deref(), Some(crate::thirdparty::CLIENT_ID));
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(CALLBACK));
    assert_eq!(query(&url, "scope"), Some(format!("{cloud}/.default")), "the fake serves its own Graph");

    let (status, body) = consent("?tenant=Contoso.com").await;
    assert_eq!((status, &body["tenant"]), (200, &json!("contoso.com")), "{body}");
    assert!(body["url"].as_str().unwrap().starts_with(&format!("{cloud}/contoso.com/v2.0/adminconsent?")));
    assert!(body["approver"].as_str().unwrap().contains("contoso.com"), "{body}");
    for refused in ["?tenant=consumers", "?tenant=not%20a%20tenant"] {
        let (status, body) = consent(refused).await;
        assert_eq!((status, &body["errors"][0]["field"]), (422, &json!("tenant")), "{refused}: {body}");
    }

    let tenant = "00000000-0000-0000-0000-0000000000aa";
    let (status, _) = admin_json(
        server,
        Method::PUT,
        "/identity-providers",
        Some(json!({ "providers": { "microsoft": { "tenant": tenant } } })),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = consent("").await;
    assert_eq!(body["tenant"], tenant, "the tenant saved in the console is the default at once");

    let bare = TestServer::start(backend, |_| {}).await;
    let (status, body) =
        admin_json(&bare, Method::GET, "/identity-providers/microsoft/admin-consent?tenant=contoso.com", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("client_id"), "{body}");
}

async fn admin_actions_never_reach_another_users_rows(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let (alice, bob) = (server.create_user("alice@contoso.com").await, server.create_user("bob@contoso.com").await);
    let bob_token = server.issue_session(bob).await;
    let bob_session = server.get_json("/sessions/validate", Some(&bob_token)).await["claims"]["session_id"].clone();
    let bob_session = bob_session.as_str().unwrap();
    let (status, _) =
        admin_json(&server, Method::DELETE, &format!("/users/{alice}/sessions/{bob_session}"), None).await;
    assert_eq!(status, 404, "Bob's session is not Alice's");
    assert_eq!(server.get_json("/sessions/validate", Some(&bob_token)).await["is_valid"], true, "and it lives on");
    let (status, _) = admin_json(&server, Method::DELETE, &format!("/users/{bob}/sessions/{bob_session}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(server.get_json("/sessions/validate", Some(&bob_token)).await["is_valid"], false);
}

both_backends!(
    the_admin_consent_url_is_made_for_any_tenant,
    admin_actions_never_reach_another_users_rows,
    admin_listener_answers_only_its_own_host_names,
    every_admin_request_needs_a_key,
    no_admin_key_no_admin_listener,
    settings_saved_in_the_console_apply_without_restart,
    redirect_url_and_cloud_instance_are_set_in_the_console,
    settings_reach_every_instance_within_seconds,
    secrets_rotate_through_the_api,
    certificates_are_added_pasted_or_generated,
    users_are_found_inspected_and_acted_on,
);
