use gatehouse_core::{
    clock::Timestamp,
    ids::{SessionId, UserId},
    session::{LiveSession, sessions_to_evict},
};
use sqlx::{Row, any::AnyRow};

use crate::{
    AuditLogEntry, NewSession, Result, SessionRecord, Store, audit::insert_audit_log, conflict, id_column, parse_uuid,
    time,
};

const FIND_LIVE_SESSION: &str = "SELECT id, user_id, user_agent, ip_address, created_at, expires_at, last_used
                                 FROM sessions WHERE id = $1 AND expires_at > $2";

/// A session row's columns, as either driver reads them.
type SessionColumns = (String, String, Option<String>, Option<String>, i64, i64, i64);

fn session_record(columns: SessionColumns) -> Result<SessionRecord> {
    let (id, user_id, user_agent, ip_address, created_at, expires_at, last_used) = columns;
    Ok(SessionRecord {
        id: parse_uuid(&id)?,
        user_id: parse_uuid(&user_id)?,
        user_agent,
        ip_address,
        created_at: Timestamp::from_millis(created_at),
        expires_at: Timestamp::from_millis(expires_at),
        last_used: Timestamp::from_millis(last_used),
    })
}

fn session_from_row(row: &AnyRow) -> Result<SessionRecord> {
    session_record((
        row.try_get("id")?,
        row.try_get("user_id")?,
        row.try_get("user_agent")?,
        row.try_get("ip_address")?,
        row.try_get("created_at")?,
        row.try_get("expires_at")?,
        row.try_get("last_used")?,
    ))
}

impl Store {
    /// Stores a new session and, in the same transaction, drops as many of the user's oldest live sessions as the
    /// limit requires and writes `audit`, the row of the event that opened the session. Returns the ids of the
    /// sessions it dropped. Expired sessions neither count nor are touched here: the periodic sweep removes them.
    pub async fn create_session(
        &self,
        session: &NewSession,
        limit: usize,
        audit: Option<&AuditLogEntry>,
    ) -> Result<Vec<SessionId>> {
        let user_id = session.user_id.to_string();
        writing!(self, |connection| {
            let mut tx = sqlx::Connection::begin(connection).await?;
            self.lock_user(&mut tx, session.user_id).await?;
            let live = sqlx::query("SELECT id, created_at FROM sessions WHERE user_id = $1 AND expires_at > $2")
                .bind(&user_id)
                .bind(session.created_at.as_millis())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok(LiveSession { id: id_column(row, "id")?, created_at: time(row, "created_at")? }))
                .collect::<Result<Vec<_>>>()?;
            let evicted = sessions_to_evict(&live, limit);
            for id in &evicted {
                sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            }
            sqlx::query(
            "INSERT INTO sessions (id, user_id, user_agent, ip_address, expires_at, last_used, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
        )
        .bind(session.id.to_string())
        .bind(&user_id)
        .bind(&session.user_agent)
        .bind(&session.ip_address)
        .bind(session.expires_at.as_millis())
        .bind(session.created_at.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(conflict("session"))?;
            if let Some(audit) = audit {
                insert_audit_log(&mut *tx, audit).await?;
            }
            tx.commit().await?;
            Ok(evicted)
        })
    }

    /// A session that exists and has not expired at `now`. Asked on every validated request, so on SQLite it is
    /// answered on the calling thread when a direct connection is free, and through sqlx otherwise.
    pub async fn find_live_session(&self, id: SessionId, now: Timestamp) -> Result<Option<SessionRecord>> {
        let columns = |row: &rusqlite::Row<'_>| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
        };
        if let Some(found) = self.read_direct(
            FIND_LIVE_SESSION,
            rusqlite::named_params! { "$1": id.to_string(), "$2": now.as_millis() },
            columns,
        ) {
            return found.map(session_record).transpose();
        }
        let row = sqlx::query(FIND_LIVE_SESSION)
            .bind(id.to_string())
            .bind(now.as_millis())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The user's live sessions, newest first.
    pub async fn list_sessions(&self, user_id: UserId, now: Timestamp) -> Result<Vec<SessionRecord>> {
        sqlx::query(
            "SELECT id, user_id, user_agent, ip_address, created_at, expires_at, last_used
             FROM sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id.to_string())
        .bind(now.as_millis())
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(session_from_row)
        .collect()
    }

    pub async fn touch_session(&self, id: SessionId, now: Timestamp) -> Result<()> {
        writing!(self, |connection| {
            Ok(sqlx::query("UPDATE sessions SET last_used = $2, updated_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(now.as_millis())
                .execute(connection)
                .await?)
        })?;
        Ok(())
    }

    /// Deletes every session that expired at or before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        self.delete_rows("DELETE FROM sessions WHERE expires_at <= $1", now).await
    }

    /// Deletes a session; `false` if there was none.
    pub async fn delete_session(&self, id: SessionId) -> Result<bool> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id.to_string()).execute(connection).await?)
        })?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes one session of `user_id`; `false` if that user has no such session.
    pub async fn delete_user_session(&self, user_id: UserId, id: SessionId) -> Result<bool> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
                .bind(id.to_string())
                .bind(user_id.to_string())
                .execute(connection)
                .await?)
        })?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes every session of `user_id`; returns how many.
    pub async fn delete_user_sessions(&self, user_id: UserId) -> Result<u64> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id.to_string())
                .execute(connection)
                .await?)
        })?;
        Ok(result.rows_affected())
    }
}
