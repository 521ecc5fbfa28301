use sqlx::{Any, Executor, Row};

use gatehouse_core::{clock::Timestamp, ids::StateId};

use crate::{NewToken, Result, Store, StoreError, TokenRecord, conflict, id_column, time};

impl Store {
    pub async fn insert_token(&self, token: &NewToken) -> Result<()> {
        writing!(self, |connection| insert_token(connection, token).await)
    }

    /// Takes a one-time token out of the store: whoever calls this first gets it, nobody gets it twice. The
    /// caller checks expiry (an expired token is consumed all the same). The token names the provider of the
    /// identity it was made for.
    pub async fn take_token(&self, value_hash: &str) -> Result<Option<TokenRecord>> {
        let row = writing!(self, |connection| {
            Ok(sqlx::query(
                "DELETE FROM tokens WHERE value_hash = $1
             RETURNING user_id, code_verifier_hash, expires_at, directory,
                       (SELECT provider_id FROM identities WHERE identities.id = tokens.identity_id) AS provider_id",
            )
            .bind(value_hash)
            .fetch_optional(connection)
            .await?)
        })?;
        row.map(|row| {
            Ok(TokenRecord {
                user_id: id_column(&row, "user_id")?,
                code_verifier_hash: row.try_get("code_verifier_hash")?,
                expires_at: time(&row, "expires_at")?,
                provider_id: row.try_get("provider_id")?,
                directory: row
                    .try_get::<Option<String>, _>("directory")?
                    .map(|json| serde_json::from_str(&json))
                    .transpose()
                    .map_err(|error| StoreError::Corrupt(format!("tokens.directory: {error}")))?,
            })
        })
        .transpose()
    }

    /// Records that a third-party state was used; `false` if it had been used before (a replay). The row is kept
    /// until the state expires (it cannot be replayed after that anyway); the periodic sweep removes it.
    pub async fn mark_state_used(&self, id: StateId, expires_at: Timestamp) -> Result<bool> {
        let inserted = writing!(self, |connection| {
            Ok(sqlx::query("INSERT INTO used_states (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(id.to_string())
                .bind(expires_at.as_millis())
                .execute(connection)
                .await?)
        })?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Deletes the records of used states that have expired; returns how many.
    pub async fn delete_expired_used_states(&self, now: Timestamp) -> Result<u64> {
        self.delete_rows("DELETE FROM used_states WHERE expires_at <= $1", now).await
    }

    /// Deletes expired one-time tokens; returns how many.
    pub async fn delete_expired_tokens(&self, now: Timestamp) -> Result<u64> {
        self.delete_rows("DELETE FROM tokens WHERE expires_at <= $1", now).await
    }
}

/// Stores a one-time token, alone or inside the transaction that produced it.
pub(crate) async fn insert_token<'e>(executor: impl Executor<'e, Database = Any>, token: &NewToken) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, user_id, value_hash, identity_id, code_verifier_hash, is_flow, user_created,
                             expires_at, created_at, directory)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(token.id.to_string())
    .bind(token.user_id.to_string())
    .bind(&token.value_hash)
    .bind(token.identity_id.map(|id| id.to_string()))
    .bind(&token.code_verifier_hash)
    .bind(token.is_flow)
    .bind(token.user_created)
    .bind(token.expires_at.as_millis())
    .bind(token.created_at.as_millis())
    .bind(token.directory.as_ref().map(|facts| serde_json::json!(facts).to_string()))
    .execute(executor)
    .await
    .map_err(conflict("token"))?;
    Ok(())
}
