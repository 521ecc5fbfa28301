//! Housekeeping: expired flows, one-time tokens, sessions and used-state records, and audit rows past their
//! retention, are deleted, so tables do not grow without bound. Requests never clean up after themselves, which keeps the sign-in path's writes few.
//! Safe to run on every instance at once: each sweep is a plain `DELETE … WHERE expires_at <= now`.

use std::time::Duration;

use gatehouse_store::StoreError;

use crate::App;

/// How often an instance sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub flows: u64,
    pub tokens: u64,
    pub sessions: u64,
    pub used_states: u64,
    pub audit_logs: u64,
}

/// Sweeps every table, each on its own: a failure on one is logged and does not stop the others. Audit rows are
/// kept for `audit_log.retention`.
pub async fn sweep(app: &App) -> Swept {
    let store = app.store();
    let audit_retention = app.config().audit_log.retention.as_duration();
    let now = app.clock().now();
    let audit_cutoff = now - audit_retention;
    let count = |table: &'static str, result: Result<u64, StoreError>| {
        result.unwrap_or_else(|error| {
            tracing::warn!(%error, table, "housekeeping failed; retrying at the next interval");
            0
        })
    };
    Swept {
        flows: count("flows", store.delete_expired_flows(now).await),
        tokens: count("tokens", store.delete_expired_tokens(now).await),
        sessions: count("sessions", store.delete_expired_sessions(now).await),
        used_states: count("used_states", store.delete_expired_used_states(now).await),
        audit_logs: count("audit_logs", store.delete_audit_logs_before(audit_cutoff).await),
    }
}
