//! Admin authentication: configured keys (plain or as hashes) and active keys in the database open the admin API;
//! a revoked or unknown key does not; use is recorded at most once a minute per key.

use std::time::Duration;

use gatehouse_app::admin_keys::{self, AdminActor};
use gatehouse_core::{clock::Clock, config::Secret};

use crate::{START, TestApp};

const CONFIGURED: &str = "a-configured-admin-key-of-32-chars!!";
const CONFIGURED_AS_HASH: &str = "another-configured-key-of-32-chars!";

#[tokio::test]
async fn without_any_key_nothing_opens_the_admin_api() {
    let test = TestApp::start(|_| {}).await;
    let keys = test.app.admin_keys();
    assert!(!keys.any().await.unwrap());
    assert_eq!(keys.authenticate("").await.unwrap(), None);
    assert_eq!(keys.authenticate(CONFIGURED).await.unwrap(), None);
}

#[tokio::test]
async fn configured_keys_open_it_as_the_configuration() {
    let test = TestApp::start(|config| {
        config.server.admin.api_keys = vec![Secret::new(CONFIGURED), Secret::new(admin_keys::hash(CONFIGURED_AS_HASH))];
    })
    .await;
    let keys = test.app.admin_keys();
    assert!(keys.any().await.unwrap());
    for key in [CONFIGURED, CONFIGURED_AS_HASH] {
        let actor = keys.authenticate(key).await.unwrap().expect("a configured key");
        assert!(actor.key_id.starts_with("config:") && actor.name == "from configuration", "{actor:?}");
    }
    let hash = admin_keys::hash(CONFIGURED_AS_HASH);
    assert_eq!(keys.authenticate(&hash).await.unwrap(), None, "the hash itself is not a key");
    assert_eq!(keys.authenticate(&CONFIGURED[1..]).await.unwrap(), None);
}

#[tokio::test]
async fn stored_keys_open_it_until_revoked_and_their_use_is_recorded_once_a_minute() {
    let test = TestApp::start(|_| {}).await;
    let (key, record) = admin_keys::generate("ops", START);
    test.store.insert_admin_key(&record).await.unwrap();
    let keys = test.app.admin_keys();
    assert!(keys.any().await.unwrap());

    let actor = keys.authenticate(&key).await.unwrap();
    assert_eq!(actor, Some(AdminActor { key_id: record.id.to_string(), name: "ops".into() }));
    let last_used = || async { test.store.list_admin_keys().await.unwrap()[0].last_used_at };
    assert_eq!(last_used().await, Some(START), "the first use is recorded");
    test.clock.advance(Duration::from_secs(60));
    keys.authenticate(&key).await.unwrap().expect("still active");
    assert_eq!(last_used().await, Some(START), "not again within a minute");
    test.clock.advance(Duration::from_millis(1));
    keys.authenticate(&key).await.unwrap().expect("still active");
    assert_eq!(last_used().await, Some(START + Duration::from_millis(60_001)), "recorded once a minute has passed");

    assert!(test.store.revoke_admin_key(record.id, test.clock.now()).await.unwrap());
    assert_eq!(keys.authenticate(&key).await.unwrap(), None, "a revoked key");
    assert!(!keys.any().await.unwrap(), "no active key left");
}
