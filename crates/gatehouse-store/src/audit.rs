use sqlx::{Any, Executor, Row};

use gatehouse_core::clock::Timestamp;

use crate::{AuditLogEntry, AuditLogFilter, Result, Store, id_column, optional_id_column, time};

const AUDIT_FILTER: &str = "($1 IS NULL OR type = $1) AND ($2 IS NULL OR actor_user_id = $2)
                            AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)";

impl Store {
    pub async fn insert_audit_log(&self, entry: &AuditLogEntry) -> Result<()> {
        writing!(self, |connection| insert_audit_log(connection, entry).await)
    }

    /// Deletes audit rows written before `cutoff` (the retention); returns how many.
    pub async fn delete_audit_logs_before(&self, cutoff: Timestamp) -> Result<u64> {
        self.delete_rows("DELETE FROM audit_logs WHERE created_at < $1", cutoff).await
    }

    /// Audit log rows matching every given filter, newest first.
    pub async fn list_audit_logs(&self, filter: &AuditLogFilter) -> Result<Vec<AuditLogEntry>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, type, error, meta_http_request_id, meta_source_ip, meta_user_agent, actor_user_id, actor_email,
                    details, created_at
             FROM audit_logs WHERE {AUDIT_FILTER}
             ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
        )))
        .bind(&filter.kind)
        .bind(filter.actor_user_id.map(|id| id.to_string()))
        .bind(filter.since.map(Timestamp::as_millis))
        .bind(filter.until.map(Timestamp::as_millis))
        .bind(i64::from(filter.limit.clamp(1, 1000)))
        .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(|row| {
            Ok(AuditLogEntry {
                id: id_column(&row, "id")?,
                kind: row.try_get("type")?,
                error: row.try_get("error")?,
                http_request_id: row.try_get("meta_http_request_id")?,
                source_ip: row.try_get("meta_source_ip")?,
                user_agent: row.try_get("meta_user_agent")?,
                actor_user_id: optional_id_column(&row, "actor_user_id")?,
                actor_email: row.try_get("actor_email")?,
                details: row.try_get("details")?,
                created_at: time(&row, "created_at")?,
            })
        })
        .collect()
    }

    /// How many audit log rows match the filter (its limit and offset aside).
    pub async fn count_audit_logs(&self, filter: &AuditLogFilter) -> Result<i64> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM audit_logs WHERE {AUDIT_FILTER}")))
                .bind(&filter.kind)
                .bind(filter.actor_user_id.map(|id| id.to_string()))
                .bind(filter.since.map(Timestamp::as_millis))
                .bind(filter.until.map(Timestamp::as_millis))
                .fetch_one(&self.reader)
                .await?;
        Ok(row.try_get("n")?)
    }
}

/// Writes one audit row, alone or inside the transaction whose change it records.
pub(crate) async fn insert_audit_log<'e>(
    executor: impl Executor<'e, Database = Any>,
    entry: &AuditLogEntry,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_logs (id, type, error, meta_http_request_id, meta_source_ip, meta_user_agent,
                                 actor_user_id, actor_email, details, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(entry.id.to_string())
    .bind(&entry.kind)
    .bind(&entry.error)
    .bind(&entry.http_request_id)
    .bind(&entry.source_ip)
    .bind(&entry.user_agent)
    .bind(entry.actor_user_id.map(|id| id.to_string()))
    .bind(&entry.actor_email)
    .bind(&entry.details)
    .bind(entry.created_at.as_millis())
    .execute(executor)
    .await?;
    Ok(())
}
