use gatehouse_testkit::{Backend, TestServer, both_backends};
use serde_json::{Value, json};

/// Asserts that `response` is a `status` error in Hanko's shape; returns its body.
pub async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], status, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

async fn every_error_has_hankos_shape(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let client = &server.client;
    let body = expect_error(client.get(server.url("/no/such/route")).send().await.unwrap(), 404).await;
    assert_eq!(body, json!({"code": 404, "message": "Not Found"}));
    expect_error(client.delete(server.url("/me")).send().await.unwrap(), 405).await;
    let validate = server.url("/sessions/validate");
    expect_error(client.post(&validate).body("{}").send().await.unwrap(), 415).await;
    let malformed = client.post(&validate).header("content-type", "application/json").body("{not json").send();
    expect_error(malformed.await.unwrap(), 400).await;
    let wrong_shape = client.post(&validate).json(&json!({"session_token": 42})).send();
    expect_error(wrong_shape.await.unwrap(), 422).await;
    let unknown_field = client.post(&validate).json(&json!({"session_token": "x", "extra": 1})).send();
    expect_error(unknown_field.await.unwrap(), 422).await;
    let huge = json!({"session_token": "x".repeat(100 * 1024)});
    // The server answers 413 from the headers and closes without reading the body; the kernel may then reset the
    // connection before the client has read that answer. Such a reset is a transport artefact, so it is retried;
    // any answer that does arrive must be the 413.
    // Its own client without a connection pool: the closed connection must not be reused by the requests after it.
    let unpooled = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut attempts = 0;
    let too_large = loop {
        attempts += 1;
        match unpooled.post(&validate).json(&huge).send().await {
            Ok(response) => break response,
            Err(error) if attempts < 5 && !error.is_status() => continue,
            Err(error) => panic!("no answer to an oversized body: {error}"),
        }
    };
    expect_error(too_large, 413).await;
    expect_error(client.get(server.url("/me")).bearer_auth("garbage").send().await.unwrap(), 401).await;
    expect_error(client.post(server.url("/logout")).send().await.unwrap(), 401).await;
}

async fn cors_answers_exact_allowed_origins(backend: Backend) {
    let server = TestServer::start(backend, |config| {
        config.server.public.cors.allow_origins = vec!["http://127.0.0.1:8888".into()];
    })
    .await;
    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/sessions/validate"))
        .header("origin", "http://127.0.0.1:8888")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization,content-type,x-language")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://127.0.0.1:8888");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(headers["access-control-max-age"], "7200");
    assert_eq!(headers["access-control-allow-headers"], "authorization,content-type,x-language");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert!(headers["vary"].to_str().unwrap().to_lowercase().contains("origin"));

    let simple = server
        .client
        .get(server.url("/sessions/validate"))
        .header("origin", "http://127.0.0.1:8888")
        .send()
        .await
        .unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], "http://127.0.0.1:8888");
    let exposed = simple.headers()["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("x-session-lifetime") && exposed.contains("x-session-retention"), "{exposed}");
    assert!(!exposed.contains("x-auth-token"), "X-Auth-Token is exposed only in header mode");

    let stranger = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/sessions/validate"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(stranger.headers().get("access-control-allow-origin").is_none());
    let not_found =
        server.client.get(server.url("/nope")).header("origin", "http://127.0.0.1:8888").send().await.unwrap();
    assert_eq!(not_found.headers()["access-control-allow-origin"], "http://127.0.0.1:8888", "errors carry CORS too");
}

async fn health_and_legacy_config(backend: Backend) {
    let server = TestServer::start(backend, |config| config.account.allow_signup = false).await;
    let alive: Value = server.client.get(server.url("/health/alive")).send().await.unwrap().json().await.unwrap();
    assert_eq!(alive, json!({"alive": true}));
    let ready: Value = server.client.get(server.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"ready": true}));
    let config: Value =
        server.client.get(server.url("/.well-known/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["account"], json!({"allow_deletion": false, "allow_signup": false}));
    assert_eq!(config["emails"], json!({"require_verification": true, "max_num_of_addresses": 5}));
    assert_eq!(config["providers"], json!([]));
    let jwks = server.client.get(server.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=60");
    let jwks: Value = jwks.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private parts in the JWKS");
    let id = server.client.get(server.url("/health/alive")).send().await.unwrap();
    assert!(id.headers().get("x-request-id").is_some());
}

/// No browser may sniff a JSON answer (or an error) into something it runs: every response of both listeners says
/// `nosniff`.
async fn every_response_forbids_type_sniffing(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let admin = server.admin_url.clone().expect("the admin API is on");
    let responses = [
        server.client.get(server.url("/.well-known/jwks.json")).send().await.unwrap(),
        server.client.get(server.url("/no/such/route")).send().await.unwrap(),
        server.client.get(server.url("/me")).send().await.unwrap(),
        server.client.get(server.url("/")).send().await.unwrap(),
        server.admin(reqwest::Method::GET, "/users").send().await.unwrap(),
        server.client.get(format!("{admin}/users")).send().await.unwrap(),
        server.client.get(format!("{admin}/")).send().await.unwrap(),
    ];
    for response in responses {
        assert_eq!(
            response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{} {}",
            response.url(),
            response.status()
        );
    }
}

both_backends!(
    every_error_has_hankos_shape,
    cors_answers_exact_allowed_origins,
    health_and_legacy_config,
    every_response_forbids_type_sniffing,
);
