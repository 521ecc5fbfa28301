//! Audit log rows: who did what, from where. Never tokens, codes or secrets. What an anonymous client can make the
//! server store is bounded: request metadata is capped, and anonymous failures are aggregated.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use gatehouse_core::{
    clock::{Clock, Timestamp},
    ids::{AuditEntryId, UserId},
};
use gatehouse_store::{AuditLogEntry, Store};

use crate::admin_keys::AdminActor;

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The longest user agent an audit row keeps.
const USER_AGENT_CHARS: usize = 256;
/// The longest request id an audit row keeps; ids are UUIDs unless a proxy sets its own.
const REQUEST_ID_CHARS: usize = 64;

/// Anonymous failures (no user behind them: a junk callback, a made-up token) are what anyone can make the server
/// store without credentials. Each client writes at most one row per kind and window, which notes how many were
/// suppressed before it, and all clients together at most `rows_per_window`.
#[derive(Debug)]
pub struct AnonymousFailures {
    window: Duration,
    rows_per_window: u32,
    windows: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    /// Per (kind, client): when its window started, and the failures suppressed since its last row.
    clients: HashMap<(String, String), (Timestamp, u64)>,
    /// The shared window: when it started, and the rows admitted in it.
    shared: (Timestamp, u32),
}

impl AnonymousFailures {
    pub const WINDOW: Duration = Duration::from_secs(60);
    pub const ROWS_PER_WINDOW: u32 = 120;
    const MAX_CLIENTS: usize = 50_000;

    pub fn new(window: Duration, rows_per_window: u32) -> Self {
        Self { window, rows_per_window, windows: Mutex::new(Windows::default()) }
    }

    /// Whether a failure of `kind` from `client` at `now` gets a row: `Some(n)` with the number of this
    /// client's failures of this kind suppressed before it, `None` when it is only counted.
    pub fn admit(&self, kind: &str, client: &str, now: Timestamp) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = self.window;
        if now.since(windows.shared.0) >= window {
            windows.shared = (now, 0);
            // Clients whose window ended with nothing suppressed need no memory; the rest keep their count.
            windows.clients.retain(|_, (started, suppressed)| now.since(*started) < window || *suppressed > 0);
        }
        let key = (kind.to_owned(), client.to_owned());
        let shared_full = windows.shared.1 >= self.rows_per_window;
        let client_window = windows.clients.get(&key).copied();
        let own_window_open = client_window.is_some_and(|(started, _)| now.since(started) < window);
        if own_window_open || shared_full {
            // Past this many clients a flood's count is dropped rather than memory grown.
            if client_window.is_some() || windows.clients.len() < Self::MAX_CLIENTS {
                windows.clients.entry(key).or_insert((now, 0)).1 += 1;
            }
            return None;
        }
        windows.shared.1 += 1;
        windows.clients.insert(key, (now, 0));
        Some(client_window.map_or(0, |(_, suppressed)| suppressed))
    }
}

#[derive(Debug)]
pub struct AuditLog<'a> {
    store: &'a Store,
    anonymous_failures: &'a AnonymousFailures,
    clock: &'a dyn Clock,
}

impl<'a> AuditLog<'a> {
    pub(crate) fn new(store: &'a Store, anonymous_failures: &'a AnonymousFailures, clock: &'a dyn Clock) -> Self {
        Self { store, anonymous_failures, clock }
    }

    /// The row of an event at `at`, for a transaction that records it together with the change (then
    /// [`Self::announce`] it after the commit). Such a row shares the transaction's fate: a sign-in or session
    /// that cannot be recorded is not made, unlike the rows [`Self::record`] writes on their own.
    pub fn entry(
        kind: &str,
        actor_user_id: Option<UserId>,
        error: Option<&str>,
        meta: &RequestMeta,
        at: Timestamp,
    ) -> AuditLogEntry {
        AuditLogEntry {
            id: AuditEntryId::generate(),
            kind: kind.to_owned(),
            error: error.map(str::to_owned),
            http_request_id: meta.request_id.as_deref().map(|id| {
                id.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.:".contains(*c)).take(REQUEST_ID_CHARS).collect()
            }),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.as_deref().map(|agent| agent.chars().take(USER_AGENT_CHARS).collect()),
            actor_user_id,
            actor_email: None,
            details: None,
            created_at: at,
        }
    }

    /// Reports an event in the process log too, once its row is stored.
    pub fn announce(kind: &str, actor_user_id: Option<UserId>, error: Option<&str>) {
        tracing::info!(audit = kind, user_id = ?actor_user_id, error, "audit");
    }

    /// Writes one row. A failure is logged, not returned: losing an audit row must not fail the user's request.
    /// An anonymous failure (no `actor_user_id`) goes through [`AnonymousFailures`].
    pub async fn record(&self, kind: &str, actor_user_id: Option<UserId>, error: Option<&str>, meta: &RequestMeta) {
        let mut entry = Self::entry(kind, actor_user_id, error, meta, self.clock.now());
        if actor_user_id.is_none() && error.is_some() {
            let client = meta.source_ip.as_deref().unwrap_or("unknown");
            match self.anonymous_failures.admit(kind, client, entry.created_at) {
                None => {
                    tracing::debug!(audit = kind, error, "anonymous failure counted, not stored");
                    return;
                }
                Some(0) => {}
                Some(suppressed) => {
                    entry.details = Some(serde_json::json!({ "suppressed_before": suppressed }).to_string())
                }
            }
        }
        self.write(entry).await;
    }

    /// Writes the row of an admin API change: which key made it (`details.admin_key`) and what changed, never a
    /// secret. `user_id` is the user the change was about, so the user filter finds it.
    pub async fn record_admin(
        &self,
        kind: &str,
        actor: &AdminActor,
        user_id: Option<UserId>,
        mut details: serde_json::Value,
        meta: &RequestMeta,
    ) {
        details["admin_key"] = serde_json::json!({ "id": actor.key_id, "name": actor.name });
        self.write(AuditLogEntry {
            details: Some(details.to_string()),
            ..Self::entry(kind, user_id, None, meta, self.clock.now())
        })
        .await;
    }

    async fn write(&self, entry: AuditLogEntry) {
        if let Err(error) = self.store.insert_audit_log(&entry).await {
            tracing::error!(%error, kind = entry.kind, "could not write audit log row");
        }
        Self::announce(&entry.kind, entry.actor_user_id, entry.error.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    #[test]
    fn each_client_writes_one_row_per_kind_and_window() {
        let failures = AnonymousFailures::new(Duration::from_secs(60), 100);
        assert_eq!(failures.admit("callback_failed", "10.0.0.1", at(0)), Some(0));
        for t in 1..1_000 {
            assert_eq!(failures.admit("callback_failed", "10.0.0.1", at(t)), None, "suppressed at {t}");
        }
        assert_eq!(failures.admit("token_failed", "10.0.0.1", at(5)), Some(0), "kinds are counted apart");
        assert_eq!(failures.admit("callback_failed", "10.0.0.2", at(5)), Some(0), "clients are counted apart");
        assert_eq!(failures.admit("callback_failed", "10.0.0.1", at(60_000)), Some(999), "the next window notes them");
        assert_eq!(failures.admit("callback_failed", "10.0.0.1", at(60_001)), None);
    }

    #[test]
    fn all_clients_together_write_a_bounded_number_of_rows() {
        let failures = AnonymousFailures::new(Duration::from_secs(60), 10);
        let written = (0..1_000).filter(|n| failures.admit("k", &format!("client-{n}"), at(1_000)).is_some()).count();
        assert_eq!(written, 10);
        assert_eq!(failures.admit("k", "client-999", at(61_000)), Some(1), "a refused client's failure is counted");
        assert_eq!(failures.admit("k", "fresh", at(61_000)), Some(0), "a new shared window admits rows again");
    }

    #[test]
    fn metadata_is_capped() {
        let meta = RequestMeta {
            request_id: Some(format!("{}\n{}", "r".repeat(300), "x")),
            source_ip: Some("127.0.0.1".into()),
            user_agent: Some("a".repeat(2_000)),
        };
        let entry = AuditLog::entry("k", None, None, &meta, Timestamp::UNIX_EPOCH);
        assert_eq!(entry.http_request_id.unwrap(), "r".repeat(REQUEST_ID_CHARS));
        assert_eq!(entry.user_agent.unwrap().len(), USER_AGENT_CHARS);
    }
}
