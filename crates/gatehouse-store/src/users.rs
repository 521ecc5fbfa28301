use gatehouse_core::email::EmailProof;
use gatehouse_core::ids::{IdentityId, UserId};
use sqlx::Row;

use crate::{
    EmailRecord, IdentityRecord, NewUser, Result, Store, StoreError, UserRecord, UserSummary, conflict, flag,
    id_column, optional_id_column, proof, time,
};

impl Store {
    /// Creates a user and, if given, their primary email, in one transaction.
    pub async fn create_user(&self, user: &NewUser) -> Result<()> {
        writing!(self, |connection| {
            let mut tx = sqlx::Connection::begin(connection).await?;
            sqlx::query(
                "INSERT INTO users (id, name, given_name, family_name, picture, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(user.id.to_string())
            .bind(&user.name)
            .bind(&user.given_name)
            .bind(&user.family_name)
            .bind(&user.picture)
            .bind(user.created_at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(conflict("user"))?;
            if let Some(email) = &user.email {
                sqlx::query(
                "INSERT INTO emails (id, user_id, address, evidence, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(email.id.to_string())
            .bind(user.id.to_string())
            .bind(email.address.as_str())
            .bind(email.proof.map(EmailProof::as_str))
            .bind(user.created_at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(conflict("email address"))?;
                sqlx::query(
                "INSERT INTO primary_emails (id, email_id, user_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(email.id.to_string())
            .bind(user.id.to_string())
            .bind(user.created_at.as_millis())
            .execute(&mut *tx)
            .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// A user with their emails and identities.
    pub async fn find_user(&self, id: UserId) -> Result<Option<UserRecord>> {
        let id_text = id.to_string();
        // One connection for the three reads: the pool checks a connection each time it gets one back.
        let mut reader = self.reader.acquire().await?;
        let Some(row) = sqlx::query(
            "SELECT name, given_name, family_name, picture, created_at, updated_at FROM users WHERE id = $1",
        )
        .bind(&id_text)
        .fetch_optional(&mut *reader)
        .await?
        else {
            return Ok(None);
        };
        let emails = sqlx::query(
            "SELECT e.id, e.address, e.evidence, e.created_at, p.id IS NOT NULL AS is_primary
             FROM emails e LEFT JOIN primary_emails p ON p.email_id = e.id
             WHERE e.user_id = $1 ORDER BY e.created_at, e.id",
        )
        .bind(&id_text)
        .fetch_all(&mut *reader)
        .await?
        .into_iter()
        .map(|row| {
            Ok(EmailRecord {
                id: id_column(&row, "id")?,
                address: row.try_get("address")?,
                proof: proof(&row, "evidence")?,
                is_primary: flag(&row, "is_primary")?,
                created_at: time(&row, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let identities = sqlx::query(
            "SELECT id, provider_id, provider_user_id, email_id, data, created_at
             FROM identities WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(&id_text)
        .fetch_all(&mut *reader)
        .await?
        .into_iter()
        .map(|row| {
            Ok(IdentityRecord {
                id: id_column(&row, "id")?,
                provider_id: row.try_get("provider_id")?,
                provider_user_id: row.try_get("provider_user_id")?,
                email_id: optional_id_column(&row, "email_id")?,
                data: row.try_get("data")?,
                created_at: time(&row, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(UserRecord {
            id,
            name: row.try_get("name")?,
            given_name: row.try_get("given_name")?,
            family_name: row.try_get("family_name")?,
            picture: row.try_get("picture")?,
            created_at: time(&row, "created_at")?,
            updated_at: time(&row, "updated_at")?,
            emails,
            identities,
        }))
    }

    /// Deletes a user and, by cascade, their emails, identities, tokens and sessions.
    pub async fn delete_user(&self, id: UserId) -> Result<bool> {
        writing!(self, |connection| {
            let mut tx = sqlx::Connection::begin(connection).await?;
            // Primary emails point at emails; remove them first so the email cascade has nothing left to guard.
            sqlx::query("DELETE FROM primary_emails WHERE user_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM users WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(deleted.rows_affected() > 0)
        })
    }

    /// The number of users; for health output and tests.
    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.reader).await?;
        row.try_get::<i64, _>("n").map_err(StoreError::from)
    }

    /// One page of users, newest first, optionally only those with an email address containing `email_part`
    /// (case-insensitive), and how many match in all.
    pub async fn search_users(
        &self,
        email_part: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<UserSummary>, i64)> {
        let pattern = email_part.map(|part| format!("%{}%", escape_like(&part.to_lowercase())));
        const MATCHES: &str = "($1 IS NULL OR EXISTS (SELECT 1 FROM emails x WHERE x.user_id = u.id
                                                     AND lower(x.address) LIKE $1 ESCAPE '\\'))";
        let users = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT u.id, u.created_at, u.updated_at, e.address
             FROM users u LEFT JOIN primary_emails p ON p.user_id = u.id LEFT JOIN emails e ON e.id = p.email_id
             WHERE {MATCHES} ORDER BY u.created_at DESC, u.id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(&pattern)
        .bind(i64::from(limit.clamp(1, 1000)))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(|row| {
            Ok(UserSummary {
                id: id_column(&row, "id")?,
                primary_email: row.try_get("address")?,
                created_at: time(&row, "created_at")?,
                updated_at: time(&row, "updated_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let total = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM users u WHERE {MATCHES}")))
            .bind(&pattern)
            .fetch_one(&self.reader)
            .await?
            .try_get::<i64, _>("n")?;
        Ok((users, total))
    }

    /// Removes one identity of `user_id`: the provider account can no longer sign in as this user.
    pub async fn unlink_identity(&self, user_id: UserId, identity_id: IdentityId) -> Result<bool> {
        let result = writing!(self, |connection| {
            Ok(sqlx::query("DELETE FROM identities WHERE id = $1 AND user_id = $2")
                .bind(identity_id.to_string())
                .bind(user_id.to_string())
                .execute(connection)
                .await?)
        })?;
        Ok(result.rows_affected() > 0)
    }
}

/// Escapes `%`, `_` and the escape character itself, so user input matches literally inside a LIKE pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
