//! Audit log rows: who did what, from where. Never tokens, codes or secrets.

use gatehouse_store::{AuditLogEntry, Store};
use uuid::Uuid;

use crate::clock;

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug)]
pub struct AuditLog<'a> {
    store: &'a Store,
}

impl<'a> AuditLog<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Writes one row. A failure is logged, not returned: losing an audit row must not fail the user's request.
    pub async fn record(&self, kind: &str, actor_user_id: Option<Uuid>, error: Option<&str>, meta: &RequestMeta) {
        let entry = AuditLogEntry {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            error: error.map(str::to_owned),
            http_request_id: meta.request_id.clone(),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            actor_user_id,
            actor_email: None,
            details: None,
            created_at: clock::now_ms(),
        };
        if let Err(error) = self.store.insert_audit_log(&entry).await {
            tracing::error!(%error, kind, "could not write audit log row");
        }
        tracing::info!(audit = kind, user_id = ?actor_user_id, error, "audit");
    }
}
