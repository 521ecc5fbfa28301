//! Rate limits on `POST /token`: who counts as one client behind proxies, what is counted, and where the counts
//! live (one instance's memory, or Redis shared by all).

use gatehouse_core::clock::Clock;
use gatehouse_core::config::{Config, RateLimitStore};
use gatehouse_store::AuditLogFilter;
use gatehouse_testkit::{Backend, TestServer, both_backends};
use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::thirdparty::{APP, Setup, query};

/// `POST /token` with `token`, through a proxy that says the client is `forwarded_for` when given.
async fn exchange(server: &TestServer, token: &str, forwarded_for: Option<&str>) -> Response {
    let mut request = server.client.post(server.url("/token")).json(&json!({ "value": token }));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.unwrap()
}

/// The statuses of `count` exchanges of made-up tokens.
async fn junk(server: &TestServer, count: usize, forwarded_for: Option<&str>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(exchange(server, "made-up", forwarded_for).await.status().as_u16());
    }
    statuses
}

/// A one-time token from a complete sign-in at the fake Entra ID.
async fn valid_token(setup: &Setup) -> String {
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    query(&landing, "hanko_token").unwrap()
}

fn behind_local_proxy(config: &mut Config) {
    config.server.public.trusted_proxies = vec!["127.0.0.0/8".into()];
}

fn shared_redis(key_prefix: &str) -> impl Fn(&mut Config) {
    let key_prefix = key_prefix.to_owned();
    move |config| {
        config.rate_limiter.store = RateLimitStore::Redis;
        config.rate_limiter.redis_config.key_prefix = key_prefix.clone();
    }
}

async fn failure_sources(server: &TestServer) -> Vec<String> {
    let filter = AuditLogFilter { kind: Some("token_exchange_failed".into()), limit: 100, ..Default::default() };
    let rows = server.store.list_audit_logs(&filter).await.unwrap();
    rows.into_iter().filter_map(|row| row.source_ip).collect()
}

async fn behind_a_trusted_proxy_each_client_has_its_own_bucket(backend: Backend) {
    let setup = Setup::start(backend, behind_local_proxy).await;
    let server = &setup.server;
    assert_eq!(junk(server, 4, Some("203.0.113.1")).await, vec![404, 404, 404, 429]);
    assert_eq!(junk(server, 1, Some("198.51.100.7, 203.0.113.2")).await, vec![404], "another client, its own bucket");
    let mut sources = failure_sources(server).await;
    sources.sort();
    assert_eq!(sources, ["203.0.113.1", "203.0.113.2"], "audit rows name the clients, not the proxy");

    let token = valid_token(&setup).await;
    let response = exchange(server, &token, Some("203.0.113.2")).await;
    assert_eq!(response.status(), 200);
    let user_id = response.json::<serde_json::Value>().await.unwrap()["user_id"].as_str().unwrap().parse().unwrap();
    let sessions = server.store.list_sessions(user_id, server.clock.now()).await.unwrap();
    assert_eq!(sessions[0].ip_address.as_deref(), Some("203.0.113.2"), "so does the session");
}

async fn an_untrusted_peers_forwarding_headers_are_ignored(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    assert_eq!(junk(&server, 3, Some("203.0.113.1")).await, vec![404, 404, 404]);
    assert_eq!(junk(&server, 1, Some("203.0.113.2")).await, vec![429], "one client, whatever it claims");
    let response = server
        .client
        .post(server.url("/token"))
        .header("forwarded", "for=203.0.113.3")
        .json(&json!({ "value": "made-up" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(failure_sources(&server).await.iter().all(|source| source == "127.0.0.1"));
}

async fn junk_never_locks_out_a_valid_token(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let server = &setup.server;
    let first = valid_token(&setup).await;
    let second = valid_token(&setup).await;
    assert_eq!(junk(server, 4, None).await, vec![404, 404, 404, 429]);
    assert_eq!(exchange(server, &first, None).await.status(), 200, "the same address, past its limit");
    assert_eq!(junk(server, 1, None).await, vec![429], "a success does not lift the limit on junk");
    assert_eq!(exchange(server, &second, None).await.status(), 200);
}

async fn the_limit_says_when_to_come_back(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let mut last = None;
    for remaining in ["2", "1", "0"] {
        let response = exchange(&server, "made-up", None).await;
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
        last = Some(response);
    }
    assert!(last.unwrap().headers().get("retry-after").is_none(), "no wait while within the limit");
    let refused = exchange(&server, "made-up", None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "60", "59.5 s left: rounded up");
    assert_eq!(refused.headers()["x-ratelimit-reset"], "60");
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap(),
        json!({"code": 429, "message": "Too Many Requests"})
    );

    server.clock.set(server.clock_start + std::time::Duration::from_millis(59_499));
    let refused = exchange(&server, "made-up", None).await;
    assert_eq!(refused.headers()["retry-after"], "1", "1 ms left: never 0");
    server.clock.set(server.clock_start + std::time::Duration::from_millis(59_500));
    assert_eq!(junk(&server, 1, None).await, vec![404], "the next window");
}

async fn instances_sharing_redis_share_the_bucket(backend: Backend) {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4());
    let first = TestServer::start(backend, shared_redis(&prefix)).await;
    let mut config = first.state.config().clone();
    let second = TestServer::start_with(config.clone()).await;
    assert_eq!(junk(&first, 2, None).await, vec![404, 404]);
    assert_eq!(junk(&second, 2, None).await, vec![404, 429], "the second instance sees the first's count");
    assert_eq!(junk(&first, 1, None).await, vec![429]);

    config.rate_limiter.redis_config.key_prefix = format!("test:{}:", uuid::Uuid::new_v4());
    let elsewhere = TestServer::start_with(config).await;
    assert_eq!(junk(&elsewhere, 1, None).await, vec![404], "another prefix, other counts");
}

/// Redis down: failures go uncounted (fail open), so nothing is refused; sign-ins never needed it.
async fn an_unreachable_redis_fails_open(backend: Backend) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let setup = Setup::start(backend, |config| {
        shared_redis("test:unreachable:")(config);
        config.rate_limiter.redis_config.address = closed.to_string();
    })
    .await;
    let server = &setup.server;
    assert_eq!(junk(server, 5, None).await, vec![404; 5]);
    let response = exchange(server, "made-up", None).await;
    assert!(response.headers().get("x-ratelimit-remaining").is_none(), "nothing counted, nothing claimed");
    assert_eq!(exchange(server, &valid_token(&setup).await, None).await.status(), 200);
}

both_backends!(
    behind_a_trusted_proxy_each_client_has_its_own_bucket,
    an_untrusted_peers_forwarding_headers_are_ignored,
    junk_never_locks_out_a_valid_token,
    the_limit_says_when_to_come_back,
    instances_sharing_redis_share_the_bucket,
    an_unreachable_redis_fails_open,
);
