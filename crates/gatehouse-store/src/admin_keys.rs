use gatehouse_core::{clock::Timestamp, ids::AdminKeyId};
use sqlx::{Row, any::AnyRow};

use crate::{AdminKeyRecord, Result, Store, conflict, id_column, optional_time, time};

fn admin_key_from_row(row: &AnyRow) -> Result<AdminKeyRecord> {
    Ok(AdminKeyRecord {
        id: id_column(row, "id")?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        created_at: time(row, "created_at")?,
        last_used_at: optional_time(row, "last_used_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

const ADMIN_KEY_COLUMNS: &str = "id, name, key_hash, created_at, last_used_at, revoked_at";

impl Store {
    pub async fn insert_admin_key(&self, key: &AdminKeyRecord) -> Result<()> {
        writing!(self, |connection| {
            sqlx::query(
                "INSERT INTO admin_keys (id, name, key_hash, created_at, last_used_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key.id.to_string())
            .bind(&key.name)
            .bind(&key.key_hash)
            .bind(key.created_at.as_millis())
            .bind(key.last_used_at.map(Timestamp::as_millis))
            .bind(key.revoked_at.map(Timestamp::as_millis))
            .execute(connection)
            .await
            .map_err(conflict("admin key"))
        })?;
        Ok(())
    }

    /// Every admin key, revoked ones included, oldest first.
    pub async fn list_admin_keys(&self) -> Result<Vec<AdminKeyRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys ORDER BY created_at, id")))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(admin_key_from_row)
            .collect()
    }

    /// Keys that are not revoked; the caller compares hashes in constant time.
    pub async fn active_admin_keys(&self) -> Result<Vec<AdminKeyRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE revoked_at IS NULL ORDER BY created_at, id"
        )))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(admin_key_from_row)
        .collect()
    }

    /// Revokes a key; `false` when there is no such key or it was already revoked.
    pub async fn revoke_admin_key(&self, id: AdminKeyId, now: Timestamp) -> Result<bool> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query("UPDATE admin_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(now.as_millis())
                .execute(connection)
                .await?)
        })?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn touch_admin_key(&self, id: AdminKeyId, now: Timestamp) -> Result<()> {
        writing!(self, |connection| {
            Ok(sqlx::query("UPDATE admin_keys SET last_used_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(now.as_millis())
                .execute(connection)
                .await?)
        })?;
        Ok(())
    }
}
