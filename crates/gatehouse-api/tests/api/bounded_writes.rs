//! What an anonymous client can make the server store, or spend, is bounded: a flood of junk callbacks writes one
//! audit row per client and minute, with capped metadata; new flows (a row each) and callbacks that would cost a
//! request to Microsoft are limited per client.

use gatehouse_store::AuditLogFilter;
use gatehouse_testkit::{Backend, both_backends};

use crate::thirdparty::{APP, Setup, error_of};

async fn junk_callbacks_write_one_capped_row_per_client_and_minute(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let server = &setup.server;
    let long = "x".repeat(512);
    for _ in 0..300 {
        let response = server
            .client
            .get(server.url("/thirdparty/callback?state=junk&code=junk"))
            .header("user-agent", &long)
            .header("x-request-id", &long)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307);
    }
    let rows = server.store.list_audit_logs(&AuditLogFilter { limit: 1_000, ..Default::default() }).await;
    let rows = rows.unwrap();
    assert_eq!(rows.len(), 1, "300 junk callbacks from one client: one row");
    let row = &rows[0];
    assert_eq!(row.kind, "thirdparty_signin_signup_failed");
    assert!(row.user_agent.as_ref().unwrap().len() <= 256 && row.http_request_id.as_ref().unwrap().len() <= 64);
}

/// Each anonymous `POST /login` stores a flow for an hour: past `rate_limiter.flow_limits` a client gets 429.
async fn new_flows_are_limited_per_client(backend: Backend) {
    let setup = Setup::start(backend, |config| config.rate_limiter.flow_limits.tokens = 5).await;
    let server = &setup.server;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = server.client.post(server.url("/login")).send().await.unwrap();
        statuses.push(response.status().as_u16());
        let body: serde_json::Value = response.json().await.unwrap();
        if statuses.last() == Some(&429) {
            assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        }
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 5, "20 asked, 5 flows stored: {statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 15);
    let other_client =
        server.client.post(server.url("/login")).header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    assert_eq!(other_client.status(), 429, "a header from an untrusted peer names no other client");
}

/// Each callback with a valid code costs one request to Microsoft with the app's credential: past
/// `rate_limiter.callback_limits` a client's codes are not redeemed.
async fn callbacks_that_cost_a_microsoft_request_are_limited(backend: Backend) {
    let setup = Setup::start(backend, |config| config.rate_limiter.callback_limits.tokens = 2).await;
    for _ in 0..2 {
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        assert!(error_of(&landing).0.is_empty(), "{landing}");
    }
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert_eq!(error_of(&landing).0, "rate_limit_exceeded");
    assert_eq!(setup.entra.token_requests(), 2, "the third code was never sent to Microsoft");
}

both_backends!(
    junk_callbacks_write_one_capped_row_per_client_and_minute,
    new_flows_are_limited_per_client,
    callbacks_that_cost_a_microsoft_request_are_limited,
);
