//! What an anonymous client can make the server store is bounded: a flood of junk callbacks writes one audit row
//! per client and minute, with capped metadata.

use gatehouse_store::AuditLogFilter;
use gatehouse_testkit::{Backend, both_backends};

use crate::thirdparty::Setup;

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
    let rows = server.state.store().list_audit_logs(&AuditLogFilter { limit: 1_000, ..Default::default() }).await;
    let rows = rows.unwrap();
    assert_eq!(rows.len(), 1, "300 junk callbacks from one client: one row");
    let row = &rows[0];
    assert_eq!(row.kind, "thirdparty_signin_signup_failed");
    assert!(row.user_agent.as_ref().unwrap().len() <= 256 && row.http_request_id.as_ref().unwrap().len() <= 64);
}

both_backends!(junk_callbacks_write_one_capped_row_per_client_and_minute);
