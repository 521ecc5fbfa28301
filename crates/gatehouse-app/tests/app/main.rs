//! The application without HTTP: its services driven directly, on a fresh SQLite database and a manual clock.
//! These pin the rules the API suite covers end to end, close enough to the code that a changed rule fails here
//! (and `scripts/mutants` can check them in seconds, not minutes).

mod admin_keys;
mod token_exchange;

use std::sync::Arc;

use gatehouse_app::App;
use gatehouse_core::{
    clock::{ManualClock, Timestamp},
    config::{Config, DatabaseUrl, Secret},
};
use gatehouse_store::{AuditLogEntry, AuditLogFilter, Store};

/// An application on a database of its own, with the clock it reads.
#[derive(Debug)]
pub struct TestApp {
    pub app: App,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

pub const START: Timestamp = Timestamp::from_millis(1_800_000_000_500);

impl TestApp {
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            Config { secret_keys: vec![Secret::new("app-test-secret-key-0123456789")], ..Config::default() };
        config.database.url = DatabaseUrl::new(format!("sqlite://{}", dir.path().join("gatehouse.db").display()));
        configure(&mut config);
        let store = Store::connect(config.database.url.expose(), 2).await.unwrap();
        store.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new(START));
        let app = App::new(Arc::new(config), store.clone(), clock.clone()).await.unwrap();
        Self { app, store, clock, _dir: dir }
    }

    /// The audit log, oldest first.
    pub async fn audit(&self) -> Vec<AuditLogEntry> {
        let mut entries =
            self.store.list_audit_logs(&AuditLogFilter { limit: 1000, ..AuditLogFilter::default() }).await.unwrap();
        entries.reverse();
        entries
    }
}
