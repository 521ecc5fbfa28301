//! The application's background tasks run with the server and on its clock: a row is swept once the clock has
//! passed its expiry, and not before.

use std::time::Duration;

use gatehouse_core::{
    clock::{Clock, Timestamp},
    ids::FlowId,
};
use gatehouse_store::{FlowRecord, Store};
use gatehouse_testkit::{Backend, TestDb, TestServer, both_backends, test_config, test_task_intervals};

async fn insert_flow(store: &Store, expires_at: Timestamp) -> FlowId {
    let id = FlowId::generate();
    let flow = FlowRecord {
        id,
        data: "{}".into(),
        version: 0,
        csrf_token: "c".repeat(32),
        expires_at,
        created_at: expires_at - Duration::from_millis(1),
    };
    store.insert_flow(&flow).await.unwrap();
    id
}

/// Waits for the sweeper (which runs every few milliseconds here) to have done what `done` checks.
async fn swept(mut done: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

async fn expired_rows_are_swept_on_the_servers_clock(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = test_config(&db);
    let mut intervals = test_task_intervals(&config);
    intervals.sweep = Duration::from_millis(20);
    let server = TestServer::start_with_tasks(config, intervals).await;
    let store = &server.store;
    let now = server.clock.now();
    let expired = insert_flow(store, now - Duration::from_millis(1)).await;
    let live = insert_flow(store, now + Duration::from_secs(60)).await;
    let user = server.create_user("a@example.com").await;
    server.issue_session(user).await;

    assert!(swept(async || store.find_flow(expired).await.unwrap().is_none()).await, "an expired flow is swept");
    assert!(store.find_flow(live).await.unwrap().is_some(), "a flow the clock has not passed is kept");
    assert_eq!(store.list_sessions(user, Timestamp::UNIX_EPOCH).await.unwrap().len(), 1);

    server.clock.advance(Duration::from_secs(60));
    assert!(swept(async || store.find_flow(live).await.unwrap().is_none()).await, "swept once the clock passed it");
    assert_eq!(store.list_sessions(user, Timestamp::UNIX_EPOCH).await.unwrap().len(), 1, "the session lives 12 hours");
    server.clock.advance(Duration::from_secs(12 * 3600));
    assert!(
        swept(async || store.list_sessions(user, Timestamp::UNIX_EPOCH).await.unwrap().is_empty()).await,
        "expired sessions too"
    );
    server.stop().await;
}

both_backends!(expired_rows_are_swept_on_the_servers_clock);
