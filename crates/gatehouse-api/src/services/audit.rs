//! Audit log rows: who did what, from where. Never tokens, codes or secrets.

use gatehouse_store::{AuditLogEntry, Store};
use uuid::Uuid;

use crate::{clock, services::admin_keys::AdminActor};

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

    /// The row of an event, for a transaction that records it together with the change (then [`Self::announce`]
    /// it after the commit). Such a row shares the transaction's fate: a sign-in or session that cannot be
    /// recorded is not made, unlike the rows [`Self::record`] writes on their own.
    pub fn entry(kind: &str, actor_user_id: Option<Uuid>, error: Option<&str>, meta: &RequestMeta) -> AuditLogEntry {
        AuditLogEntry {
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
        }
    }

    /// Reports an event in the process log too, once its row is stored.
    pub fn announce(kind: &str, actor_user_id: Option<Uuid>, error: Option<&str>) {
        tracing::info!(audit = kind, user_id = ?actor_user_id, error, "audit");
    }

    /// Writes one row. A failure is logged, not returned: losing an audit row must not fail the user's request.
    pub async fn record(&self, kind: &str, actor_user_id: Option<Uuid>, error: Option<&str>, meta: &RequestMeta) {
        self.write(Self::entry(kind, actor_user_id, error, meta)).await;
    }

    /// Writes the row of an admin API change: which key made it (`details.admin_key`) and what changed, never a
    /// secret. `user_id` is the user the change was about, so the user filter finds it.
    pub async fn record_admin(
        &self,
        kind: &str,
        actor: &AdminActor,
        user_id: Option<Uuid>,
        mut details: serde_json::Value,
        meta: &RequestMeta,
    ) {
        details["admin_key"] = serde_json::json!({ "id": actor.key_id, "name": actor.name });
        self.write(AuditLogEntry { details: Some(details.to_string()), ..Self::entry(kind, user_id, None, meta) })
            .await;
    }

    async fn write(&self, entry: AuditLogEntry) {
        if let Err(error) = self.store.insert_audit_log(&entry).await {
            tracing::error!(%error, kind = entry.kind, "could not write audit log row");
        }
        Self::announce(&entry.kind, entry.actor_user_id, entry.error.as_deref());
    }
}
