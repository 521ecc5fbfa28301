//! Reading a Hanko database (PostgreSQL, as Hanko's migrations left it, in any version since emails got a table of
//! their own), and writing imported users into Gatehouse's.

use std::collections::HashSet;

use gatehouse_core::{
    email::EmailProof,
    hanko_import::{HankoData, HankoEmail, HankoIdentity, HankoUser, ImportedUser},
};
use sqlx::{Any, AnyConnection, Connection, Executor, Row, Transaction};

use crate::{
    AuditLogEntry, Backend, Result, Store, StoreError, audit::insert_audit_log, conflict, flag, id_column,
    optional_id_column, time,
};

/// A Hanko database, opened read-only.
#[derive(Debug)]
pub struct HankoDatabase {
    connection: AnyConnection,
}

/// Hanko's columns that exist in this database, as `(table, column)`.
struct Schema(HashSet<(String, String)>);

impl Schema {
    fn has(&self, table: &str, column: &str) -> bool {
        self.0.contains(&(table.to_owned(), column.to_owned()))
    }

    /// `column` of `table` if this Hanko version has it, else SQL `NULL`.
    fn optional(&self, table: &str, alias: &str, column: &str) -> String {
        if self.has(table, column) { format!("{alias}.{column}") } else { "NULL::text".to_owned() }
    }
}

/// A Hanko timestamp (UTC, without a zone) as unix milliseconds.
fn millis(column: &str) -> String {
    format!("(EXTRACT(EPOCH FROM {column}) * 1000)::BIGINT")
}

impl HankoDatabase {
    /// Connects to Hanko's PostgreSQL database; every transaction on the connection is read-only, so the import
    /// cannot change it.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        if Backend::from_url(url).ok() != Some(Backend::Postgres) {
            return Err(StoreError::Hanko("Hanko's database is PostgreSQL: give a postgres:// URL".into()));
        }
        let mut connection = AnyConnection::connect(url).await?;
        connection
            .execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        Ok(Self { connection })
    }

    /// Reads users, emails, identities and how many users had passkeys or passwords, in one snapshot.
    pub async fn read(&mut self) -> Result<HankoData> {
        let mut tx = self.connection.begin().await?;
        let schema = Schema(
            sqlx::query(
                "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
                 WHERE table_schema = current_schema()",
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get("t")?, row.try_get("c")?)))
            .collect::<Result<HashSet<_>>>()?,
        );
        for (table, column) in [("users", "id"), ("emails", "verified"), ("primary_emails", "email_id")] {
            if !schema.has(table, column) {
                return Err(StoreError::Hanko(format!(
                    "no column {table}.{column}: not a Hanko database, or one older than Hanko's email table \
                     (migrate it with Hanko first)"
                )));
            }
        }
        if schema.has("users", "tenant_id") {
            let tenants: i64 = sqlx::query("SELECT COUNT(DISTINCT tenant_id) AS n FROM users")
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if tenants > 1 {
                return Err(StoreError::Hanko(format!("users of {tenants} tenants; Gatehouse has one")));
            }
        }
        let users = read_users(&mut tx, &schema).await?;
        let emails = read_emails(&mut tx).await?;
        let identities =
            if schema.has("identities", "id") { read_identities(&mut tx, &schema).await? } else { Vec::new() };
        let credential_owners: Vec<&str> = ["webauthn_credentials", "password_credentials"]
            .into_iter()
            .filter(|table| schema.has(table, "user_id"))
            .collect();
        let users_with_credentials = match credential_owners.as_slice() {
            [] => 0,
            tables => {
                let union = tables.iter().map(|table| format!("SELECT user_id FROM {table}")).collect::<Vec<_>>();
                let sql = format!("SELECT COUNT(*) AS n FROM ({}) AS owners", union.join(" UNION "));
                let count: i64 = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *tx).await?.try_get("n")?;
                usize::try_from(count).unwrap_or(usize::MAX)
            }
        };
        tx.commit().await?;
        Ok(HankoData { users, emails, identities, users_with_credentials })
    }
}

async fn read_users(tx: &mut Transaction<'_, Any>, schema: &Schema) -> Result<Vec<HankoUser>> {
    let sql = format!(
        "SELECT u.id::text AS id, {} AS name, {} AS given_name, {} AS family_name, {} AS picture,
                {} AS created_at, {} AS updated_at
         FROM users u ORDER BY u.created_at, u.id",
        schema.optional("users", "u", "name"),
        schema.optional("users", "u", "given_name"),
        schema.optional("users", "u", "family_name"),
        schema.optional("users", "u", "picture"),
        millis("u.created_at"),
        millis("u.updated_at"),
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            Ok(HankoUser {
                id: id_column(row, "id")?,
                name: row.try_get("name")?,
                given_name: row.try_get("given_name")?,
                family_name: row.try_get("family_name")?,
                picture: row.try_get("picture")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        })
        .collect()
}

async fn read_emails(tx: &mut Transaction<'_, Any>) -> Result<Vec<HankoEmail>> {
    let sql = format!(
        "SELECT e.id::text AS id, e.user_id::text AS user_id, e.address, e.verified, p.id IS NOT NULL AS is_primary,
                {} AS created_at, {} AS updated_at
         FROM emails e LEFT JOIN primary_emails p ON p.email_id = e.id AND p.user_id = e.user_id
         ORDER BY e.created_at, e.id",
        millis("e.created_at"),
        millis("e.updated_at"),
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            Ok(HankoEmail {
                id: id_column(row, "id")?,
                user_id: optional_id_column(row, "user_id")?,
                address: row.try_get("address")?,
                verified: flag(row, "verified")?,
                is_primary: flag(row, "is_primary")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        })
        .collect()
}

/// Hanko's identities, in either naming: before Hanko's `20250130154010_change_identities`, `provider_name` held
/// the provider and `provider_id` the provider's user id; since, `provider_id` and `provider_user_id`. Before
/// `20251104000000_add_user_id_to_identities`, the user was the one of the identity's email.
async fn read_identities(tx: &mut Transaction<'_, Any>, schema: &Schema) -> Result<Vec<HankoIdentity>> {
    let (provider, subject) = if schema.has("identities", "provider_user_id") {
        ("i.provider_id", "i.provider_user_id")
    } else {
        ("i.provider_name", "i.provider_id")
    };
    let user = if schema.has("identities", "user_id") { "i.user_id" } else { "e.user_id" };
    let sql = format!(
        "SELECT i.id::text AS id, {provider} AS provider, {subject} AS subject, {user}::text AS user_id,
                i.email_id::text AS email_id, i.data, {} AS created_at, {} AS updated_at
         FROM identities i LEFT JOIN emails e ON e.id = i.email_id
         ORDER BY i.created_at, i.id",
        millis("i.created_at"),
        millis("i.updated_at"),
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            Ok(HankoIdentity {
                id: id_column(row, "id")?,
                provider: row.try_get("provider")?,
                subject: row.try_get("subject")?,
                user_id: optional_id_column(row, "user_id")?,
                email_id: optional_id_column(row, "email_id")?,
                data: row.try_get("data")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        })
        .collect()
}

impl Store {
    /// Writes one imported user with their emails, primary email, identities (as `provider_id`'s) and `audit`, in
    /// one transaction. `Ok(false)`: a user with this id is already here (an earlier import), and nothing is
    /// written. An address or identity another user holds is [`StoreError::Conflict`], and nothing is written.
    pub async fn import_user(&self, imported: &ImportedUser, provider_id: &str, audit: &AuditLogEntry) -> Result<bool> {
        let user = &imported.user;
        writing!(self, |connection| {
            let mut tx = Connection::begin(connection).await?;
            let id = user.id.to_string();
            if sqlx::query("SELECT id FROM users WHERE id = $1").bind(&id).fetch_optional(&mut *tx).await?.is_some() {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO users (id, name, given_name, family_name, picture, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&user.name)
            .bind(&user.given_name)
            .bind(&user.family_name)
            .bind(&user.picture)
            .bind(user.created_at.as_millis())
            .bind(user.updated_at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(conflict("user"))?;
            for email in &imported.emails {
                sqlx::query(
                    "INSERT INTO emails (id, user_id, address, evidence, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(email.id.to_string())
                .bind(&id)
                .bind(email.address.as_str())
                .bind(email.proof.map(EmailProof::as_str))
                .bind(email.created_at.as_millis())
                .bind(email.updated_at.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(conflict("an email address belongs to another user"))?;
            }
            if let Some(primary) = imported.emails.iter().find(|email| email.is_primary) {
                sqlx::query(
                "INSERT INTO primary_emails (id, email_id, user_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(primary.id.to_string())
            .bind(&id)
            .bind(primary.created_at.as_millis())
            .bind(primary.updated_at.as_millis())
            .execute(&mut *tx)
            .await?;
            }
            for identity in &imported.identities {
                sqlx::query(
                    "INSERT INTO identities (id, provider_id, provider_user_id, data, email_id, user_id, created_at,
                                         updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(identity.id.to_string())
                .bind(provider_id)
                .bind(&identity.subject)
                .bind(&identity.data)
                .bind(identity.email_id.map(|email_id| email_id.to_string()))
                .bind(&id)
                .bind(identity.created_at.as_millis())
                .bind(identity.updated_at.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(conflict("the Microsoft identity belongs to another user"))?;
            }
            insert_audit_log(&mut *tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
