use gatehouse_core::{
    clock::Timestamp,
    ids::{EmailId, FlowId, UserId},
};
use sqlx::Row;

use crate::{FlowRecord, Result, Store, conflict};

impl Store {
    pub async fn insert_flow(&self, flow: &FlowRecord) -> Result<()> {
        writing!(self, |connection| {
            sqlx::query(
                "INSERT INTO flows (id, data, version, csrf_token, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(flow.id.to_string())
            .bind(&flow.data)
            .bind(flow.version)
            .bind(&flow.csrf_token)
            .bind(flow.expires_at.as_millis())
            .bind(flow.created_at.as_millis())
            .execute(connection)
            .await
            .map_err(conflict("flow"))
        })?;
        Ok(())
    }

    /// Asked on every flow action, so on SQLite it is answered without a thread hop when it can be.
    pub async fn find_flow(&self, id: FlowId) -> Result<Option<FlowRecord>> {
        const FIND_FLOW: &str = "SELECT data, version, csrf_token, expires_at, created_at FROM flows WHERE id = $1";
        let flow = |(data, version, csrf_token, expires_at, created_at)| FlowRecord {
            id,
            data,
            version,
            csrf_token,
            expires_at: Timestamp::from_millis(expires_at),
            created_at: Timestamp::from_millis(created_at),
        };
        let columns = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?));
        if let Some(found) = self.read_direct(FIND_FLOW, rusqlite::named_params! { "$1": id.to_string() }, columns) {
            return Ok(found.map(flow));
        }
        let row = sqlx::query(FIND_FLOW).bind(id.to_string()).fetch_optional(&self.reader).await?;
        row.map(|row| {
            Ok(flow((
                row.try_get("data")?,
                row.try_get("version")?,
                row.try_get("csrf_token")?,
                row.try_get("expires_at")?,
                row.try_get("created_at")?,
            )))
        })
        .transpose()
    }

    /// Saves a flow's next step if nobody else moved it since `expected_version` was read; `false` otherwise.
    /// This is what makes two instances (or two tabs) unable to run actions of one flow at the same time.
    pub async fn update_flow(
        &self,
        id: FlowId,
        expected_version: i64,
        data: &str,
        csrf_token: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query(
                "UPDATE flows SET data = $3, csrf_token = $4, version = version + 1, updated_at = $5
             WHERE id = $1 AND version = $2",
            )
            .bind(id.to_string())
            .bind(expected_version)
            .bind(data)
            .bind(csrf_token)
            .bind(now.as_millis())
            .execute(connection)
            .await?)
        })?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes flows that expired before `now`; returns how many.
    pub async fn delete_expired_flows(&self, now: Timestamp) -> Result<u64> {
        self.delete_rows("DELETE FROM flows WHERE expires_at <= $1", now).await
    }

    /// Deletes one of the user's emails unless it is their primary one; `false` if there was no such email.
    pub async fn delete_secondary_email(&self, user_id: UserId, email_id: EmailId) -> Result<bool> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query(
                "DELETE FROM emails WHERE id = $1 AND user_id = $2
               AND NOT EXISTS (SELECT 1 FROM primary_emails p WHERE p.email_id = emails.id)",
            )
            .bind(email_id.to_string())
            .bind(user_id.to_string())
            .execute(connection)
            .await?)
        })?;
        Ok(result.rows_affected() == 1)
    }
}
