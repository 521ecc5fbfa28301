use sqlx::Row;

use gatehouse_core::clock::Timestamp;

use crate::{Result, Store, StoredSigningKey, conflict, optional_time, time};

impl Store {
    /// Adds a signing key and retires every other active key, in one transaction: the new key signs from now on.
    pub async fn rotate_signing_key(&self, key: &StoredSigningKey) -> Result<()> {
        writing!(self, |connection| {
            let mut tx = sqlx::Connection::begin(connection).await?;
            sqlx::query("UPDATE jwks SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(key.created_at.as_millis())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO jwks (kid, algorithm, key_data, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
            )
            .bind(&key.kid)
            .bind(&key.algorithm)
            .bind(&key.sealed_private_key)
            .bind(key.created_at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(conflict("signing key"))?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Keys that may still verify a token: active ones, and retired ones retired after `retired_after`. Newest first.
    pub async fn list_signing_keys(&self, retired_after: Timestamp) -> Result<Vec<StoredSigningKey>> {
        sqlx::query(
            "SELECT kid, algorithm, key_data, created_at, retired_at FROM jwks
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(retired_after.as_millis())
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(|row| {
            Ok(StoredSigningKey {
                kid: row.try_get("kid")?,
                algorithm: row.try_get("algorithm")?,
                sealed_private_key: row.try_get("key_data")?,
                created_at: time(&row, "created_at")?,
                retired_at: optional_time(&row, "retired_at")?,
            })
        })
        .collect()
    }

    /// Whether a key with this `kid` is stored: a cheap check before reloading every key for an unknown `kid`.
    pub async fn has_signing_key(&self, kid: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS found FROM jwks WHERE kid = $1").bind(kid).fetch_optional(&self.reader).await?;
        Ok(row.is_some())
    }

    /// Removes keys retired at or before `retired_before`: no live token can carry their signature any more.
    pub async fn delete_retired_signing_keys(&self, retired_before: Timestamp) -> Result<u64> {
        self.delete_rows("DELETE FROM jwks WHERE retired_at IS NOT NULL AND retired_at <= $1", retired_before).await
    }
}
