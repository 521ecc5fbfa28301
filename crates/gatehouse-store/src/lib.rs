//! Gatehouse's storage: one [`Store`] over SQLite (embedded, the default) and PostgreSQL.
//!
//! Both backends run the same SQL through sqlx's `Any` driver (`$n` placeholders work on both); only the
//! migrations differ, one folder per dialect. Every method that changes more than one row is one transaction.
//! On SQLite, writes go through one connection taken in turn (an async mutex, not a pool: a pool pings each
//! connection it gets back, a thread hop per statement) so that transactions never race for the write lock
//! (which SQLite would answer with `SQLITE_BUSY`); reads use a pool of their own and, with WAL, never wait.
//! Row ids are time-ordered UUIDs (v7): index inserts land on the right-most pages instead of random ones, so a
//! sign-up touches few pages however large the tables grow.

/// `writing!(store, |connection| work)` runs `work` (an expression that may use `?` and `.await`) with `connection`,
/// the write connection ([`Store::write`]), and is its result. On SQLite, when `work` finds the connection unable to
/// write (its worker thread gone, or opened read-only), the connection is replaced and `work` runs once more, so
/// that no request fails for it and no periodic check is needed; [`Store::replace_if_unusable`] says why the first
/// run cannot have committed anything. A macro, not a
/// function taking a closure: the compiler cannot yet prove such a closure's future `Send` for every lifetime.
macro_rules! writing {
    ($store:expr, |$connection:ident| $work:expr) => {{
        let store: &$crate::Store = $store;
        let mut held = store.write().await?;
        let mut replaced = false;
        loop {
            let done: $crate::Result<_> = async {
                let $connection: &mut ::sqlx::AnyConnection = &mut held;
                $work
            }
            .await;
            match done {
                Err(error) if !replaced && store.replace_if_unusable(&mut held, &error).await? => replaced = true,
                done => break done,
            }
        }
    }};
}

mod accounts;
mod admin_keys;
mod audit;
mod direct;
mod flows;
mod hanko_import;
mod keys;
pub mod model;
mod sessions;
mod settings;
mod tokens;
mod users;

use std::{
    ops::{Deref, DerefMut},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use sqlx::{
    Any, AnyConnection, AnyPool, Connection, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    pool::PoolConnection,
    sqlite::SqliteConnectOptions,
};

use gatehouse_core::clock::Timestamp;

use crate::direct::DirectReader;

pub use hanko_import::HankoDatabase;

pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL (use sqlite://path or postgres://…)")]
    UnsupportedUrl,
    #[error("cannot create the database file: {0}")]
    CreateFile(std::io::Error),
    #[error("the database did not answer within {0:?}")]
    NoAnswer(Duration),
    #[error("cannot import from Hanko: {0}")]
    Hanko(String),
}

impl StoreError {
    /// Whether the database could not be reached or cannot take writes right now (down, restarting, every
    /// connection busy, the disk full or read-only), as opposed to a fault in the request or the data. Such a
    /// failure passes once the database is back; callers answer "unavailable" (503), never "not found" or
    /// "invalid".
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::NoAnswer(_) => true,
            Self::Database(error) => connection_lost(error) || database_refuses(error),
            Self::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => sqlite_unavailable(failure.extended_code),
            _ => false,
        }
    }
}

/// The connection is gone or was never had: nothing more was done on it.
fn connection_lost(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// The database answered but cannot serve now: PostgreSQL shutting down, starting or out of connections
/// (SQLSTATE classes 08 and 57P, 53300); SQLite's file full, read-only, unopenable or failing its I/O.
fn database_refuses(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database) = error else { return false };
    let Some(code) = database.code() else { return false };
    match database.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        Some(_) => code.parse().is_ok_and(sqlite_unavailable),
        None => code.starts_with("08") || code.starts_with("57P") || code == "53300",
    }
}

/// SQLite result codes (primary code in the low byte) that say the file cannot be written or read right now.
fn sqlite_unavailable(extended_code: i32) -> bool {
    use rusqlite::ffi;
    matches!(
        extended_code & 0xff,
        ffi::SQLITE_FULL | ffi::SQLITE_READONLY | ffi::SQLITE_IOERR | ffi::SQLITE_CANTOPEN | ffi::SQLITE_BUSY
    )
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// The storage interface. Cheap to clone: it holds connection pools.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    reader: AnyPool,
    writer: Writer,
    /// SQLite file databases only: reads on the calling thread for the per-request session lookup.
    direct: Option<Arc<DirectReader>>,
    /// What [`Store::ping`] asks: a connection of its own on PostgreSQL, the read pool on SQLite.
    health: AnyPool,
}

/// Creates the SQLite database file, if it is missing, readable and writable by its owner only: it holds
/// sessions and encrypted keys. SQLite creates the `-wal` and `-shm` files with the database file's permissions.
/// An existing file keeps the permissions its operator gave it.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// How long a request waits for a database connection before it fails: well within the request timeout, so that
/// a database outage answers 503 instead of holding requests until their clients give up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the readiness check waits for the database: a load balancer must tell "down" from "slow" quickly.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

const SQLITE_PRAGMAS: &str =
    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

impl Store {
    /// Connects; an SQLite file is created if it does not exist. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        match backend {
            Backend::Sqlite => {
                let url = if url.contains("mode=") || url.contains(":memory:") {
                    url.to_owned()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                let file = if url.contains(":memory:") || url.contains("mode=memory") {
                    None
                } else {
                    Some(SqliteConnectOptions::from_str(&url)?.get_filename().to_owned())
                };
                if let Some(path) = &file {
                    create_private_file(path).map_err(StoreError::CreateFile)?;
                }
                let options = AnyConnectOptions::from_str(&url)?;
                let writer = Writer::Single {
                    connection: Arc::new(tokio::sync::Mutex::new(Some(open_sqlite_writer(&options).await?))),
                    options: Arc::new(options.clone()),
                };
                let reader = AnyPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // An embedded database's connection cannot drop; a ping would only cost a thread hop.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                let direct = match file {
                    Some(path) => {
                        let count = std::thread::available_parallelism().map_or(2, usize::from);
                        Some(Arc::new(DirectReader::open(&path, count)?))
                    }
                    None => None,
                };
                Ok(Self { backend, health: reader.clone(), reader, writer, direct })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // A connection is checked (one round trip) before each use, so that after a PostgreSQL
                    // restart or fail-over a dead pooled connection is replaced before a statement is sent on it,
                    // and no request fails for it. Retrying the statement instead would be cheaper but is only
                    // safe when nothing can have committed, which a lost answer cannot tell.
                    .test_before_acquire(true)
                    .connect(url)
                    .await?;
                // The readiness check's own connection: a pool busy with requests must not make it look down.
                let health = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(PING_TIMEOUT)
                    .test_before_acquire(false)
                    .connect_lazy(url)?;
                Ok(Self { backend, reader: pool.clone(), writer: Writer::Pool(pool), direct: None, health })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs a `DELETE` whose one parameter is a time; returns how many rows went. The housekeeping deletes are all
    /// of this shape.
    async fn delete_rows(&self, sql: &'static str, at: Timestamp) -> Result<u64> {
        writing!(self, |connection| Ok(sqlx::query(sql)
            .bind(at.as_millis())
            .execute(connection)
            .await?
            .rows_affected()))
    }

    /// Applies the migrations not applied yet and says how many that was: 0 means the schema was up to date.
    pub async fn migrate(&self) -> Result<usize> {
        use sqlx::migrate::Migrate;
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let mut connection = self.write().await?;
        let table = migrator.table_name.clone();
        connection.ensure_migrations_table(&table).await?;
        let before = connection.list_applied_migrations(&table).await?.len();
        migrator.run(&mut *connection).await?;
        Ok(connection.list_applied_migrations(&table).await?.len().saturating_sub(before))
    }

    /// Answers when the database does, within [`PING_TIMEOUT`]; used by `/health/ready`.
    pub async fn ping(&self) -> Result<()> {
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.health)).await {
            Ok(answer) => answer.map(drop).map_err(StoreError::from),
            Err(_) => Err(StoreError::NoAnswer(PING_TIMEOUT)),
        }
    }

    /// Serialises transactions that change one user's rows (sessions, emails) so that limits hold under
    /// concurrency. SQLite needs nothing: its single writer connection already serialises every transaction.
    async fn lock_user(&self, tx: &mut sqlx::Transaction<'_, Any>, user_id: gatehouse_core::ids::UserId) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Answers a one-row lookup on a direct SQLite connection (see [`direct`]) when one is free, without a thread
    /// hop; `None` when the caller must ask through sqlx instead. `sql` is the caller's sqlx query text; `params`
    /// must name its parameters (`rusqlite::named_params! { "$1": … }`), since SQLite numbers `$n` parameters in
    /// the order they first appear, not by `n`.
    fn read_direct<T>(
        &self,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
        columns: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Option<T>> {
        let direct = self.direct.as_ref()?;
        match direct.query_row(sql, params, columns) {
            Ok(found) => Some(found),
            Err(direct::Unanswered::Busy) => None,
            Err(direct::Unanswered::Failed(error)) => {
                direct.report(&error);
                None
            }
        }
    }

    /// The connection to write with, taken in turn on SQLite.
    /// Waits as long as a pool would ([`ACQUIRE_TIMEOUT`]) and fails after that, or once the store is closed.
    async fn write(&self) -> Result<WriteConnection<'_>> {
        Ok(match &self.writer {
            Writer::Pool(pool) => WriteConnection::Pooled(pool.acquire().await?),
            Writer::Single { connection, .. } => {
                let held = tokio::time::timeout(ACQUIRE_TIMEOUT, connection.lock())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?;
                let open =
                    tokio::sync::MutexGuard::try_map(held, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)?;
                WriteConnection::Single(open)
            }
        })
    }

    /// Replaces SQLite's write connection when `error` says it can no longer write, and says so: the failed write
    /// then runs once more, on the new connection. Nothing of it committed: a connection whose worker thread is
    /// gone (see [`worker_gone`]) or that SQLite opened read-only (the file was not writable then; it stays
    /// read-only for good) cannot have committed anything.
    async fn replace_if_unusable(&self, connection: &mut WriteConnection<'_>, error: &StoreError) -> Result<bool> {
        let Writer::Single { options, .. } = &self.writer else { return Ok(false) };
        if !worker_gone(error) && !read_only(error) {
            return Ok(false);
        }
        tracing::warn!(%error, "the SQLite write connection cannot write; opening a new one");
        **connection = open_sqlite_writer(options).await?;
        Ok(true)
    }

    /// Closes every connection; the store answers nothing afterwards.
    pub async fn close(&self) {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        self.reader.close().await;
        self.health.close().await;
        match &self.writer {
            Writer::Pool(pool) => pool.close().await,
            Writer::Single { connection, .. } => {
                if let Some(connection) = connection.lock().await.take() {
                    let _ = connection.close().await;
                }
            }
        }
    }
}

/// Where writes go: PostgreSQL's pool, or SQLite's one write connection (`None` once the store is closed) and
/// what it takes to open another.
#[derive(Clone, Debug)]
enum Writer {
    Pool(AnyPool),
    Single { connection: Arc<tokio::sync::Mutex<Option<AnyConnection>>>, options: Arc<AnyConnectOptions> },
}

/// Whether a write failed because its SQLite connection's worker thread is gone: sqlx then fails every command on
/// that connection, until it is replaced. sqlx answers `WorkerCrashed` when a command cannot reach the worker, or
/// when the worker stopped while handling it, which it does only at the start of a transaction (a `BEGIN` whose
/// caller had gone and that it then failed to roll back) or by a panic, which leaves the transaction uncommitted
/// on the old connection. Either way nothing of the write committed, so it can run again on a new connection.
fn worker_gone(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::WorkerCrashed))
}

/// SQLite refused to write because the connection or the file is read-only (`SQLITE_READONLY` and its extended
/// codes).
fn read_only(error: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(database)) = error else { return false };
    database.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && database
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == rusqlite::ffi::SQLITE_READONLY)
}

async fn open_sqlite_writer(options: &AnyConnectOptions) -> Result<AnyConnection> {
    let mut connection = AnyConnection::connect_with(options).await?;
    connection.execute(SQLITE_PRAGMAS).await?;
    Ok(connection)
}

/// A write connection while it is held.
enum WriteConnection<'a> {
    Pooled(PoolConnection<Any>),
    Single(tokio::sync::MappedMutexGuard<'a, AnyConnection>),
}

impl Deref for WriteConnection<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Self::Pooled(connection) => connection,
            Self::Single(connection) => connection,
        }
    }
}

impl DerefMut for WriteConnection<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Self::Pooled(connection) => connection,
            Self::Single(connection) => connection,
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`], so callers can tell "exists" from "broken".
fn conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(error),
    }
}

/// A boolean column: BOOLEAN on PostgreSQL, a 0/1 INTEGER on SQLite.
fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool> {
    use sqlx::Row;
    row.try_get::<bool, _>(column)
        .or_else(|_| row.try_get::<i64, _>(column).map(|value| value != 0))
        .map_err(StoreError::from)
}

/// An `emails.evidence` value (read as `column`): what proved an address. Anything unknown is corruption, never
/// silently "verified".
fn proof(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<gatehouse_core::email::EmailProof>> {
    use sqlx::Row;
    row.try_get::<Option<String>, _>(column)?
        .map(|text| {
            gatehouse_core::email::EmailProof::parse(&text)
                .ok_or_else(|| StoreError::Corrupt(format!("{text:?} is not an email proof")))
        })
        .transpose()
}

/// UUID text as the typed id it holds.
fn parse_uuid<Id: From<uuid::Uuid>>(text: &str) -> Result<Id> {
    uuid::Uuid::parse_str(text).map(Id::from).map_err(|_| StoreError::Corrupt(format!("{text:?} is not a UUID")))
}

/// An id column (UUID text) as the typed id it holds.
fn id_column<Id: From<uuid::Uuid>>(row: &sqlx::any::AnyRow, column: &str) -> Result<Id> {
    use sqlx::Row;
    parse_uuid(&row.try_get::<String, _>(column)?)
}

/// An id column that may be NULL.
fn optional_id_column<Id: From<uuid::Uuid>>(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<Id>> {
    use sqlx::Row;
    row.try_get::<Option<String>, _>(column)?.as_deref().map(parse_uuid).transpose()
}

/// A time column: unix milliseconds.
fn time(row: &sqlx::any::AnyRow, column: &str) -> Result<Timestamp> {
    use sqlx::Row;
    Ok(Timestamp::from_millis(row.try_get(column)?))
}

/// A time column that may be NULL.
fn optional_time(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<Timestamp>> {
    use sqlx::Row;
    Ok(row.try_get::<Option<i64>, _>(column)?.map(Timestamp::from_millis))
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::pin, task::Poll};

    use super::*;

    #[test]
    fn only_a_gone_worker_makes_a_write_run_again() {
        assert!(worker_gone(&StoreError::Database(sqlx::Error::WorkerCrashed)));
        for other in [
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Database(sqlx::Error::PoolClosed),
            StoreError::Database(sqlx::Error::RowNotFound),
            StoreError::Conflict("user"),
        ] {
            assert!(!worker_gone(&other), "{other}");
        }
    }

    /// Stops `connection`'s worker thread through sqlx's own API: a `BEGIN` of the caller's own inside a
    /// transaction, whose caller goes away before the worker answers; the worker cannot deliver its refusal and
    /// stops (`Command::Begin` in sqlx-sqlite's connection/worker.rs). Nothing in Gatehouse issues such a `BEGIN`.
    async fn stop_worker(connection: &mut AnyConnection) {
        for _ in 0..100 {
            let mut tx = connection.begin().await.unwrap();
            let mut nested = pin!(Connection::begin_with(&mut *tx, "BEGIN IMMEDIATE"));
            // Dropped while waiting for the answer. An answer already there (rare) leaves the worker running, and
            // the outer transaction rolled back by the refused one: try again from the start.
            if std::future::poll_fn(|cx| Poll::Ready(nested.as_mut().poll(cx).is_pending())).await {
                break;
            }
        }
        // A command queued before the worker stops waits for ever (sqlx leaves it in the channel), so each ping
        // is given up after a while, until one finds the worker gone.
        for _ in 0..500 {
            let ping = tokio::time::timeout(Duration::from_millis(10), connection.ping()).await;
            if matches!(ping, Ok(Err(sqlx::Error::WorkerCrashed))) {
                return;
            }
        }
        panic!("the worker still answers");
    }

    fn user() -> NewUser {
        NewUser {
            id: gatehouse_core::ids::UserId::generate(),
            name: None,
            given_name: None,
            family_name: None,
            picture: None,
            email: None,
            created_at: Timestamp::from_millis(1_000),
        }
    }

    /// sqlx fails every command of a SQLite connection whose worker thread stopped; the first write after that
    /// succeeds all the same, on a new connection, and so do the writes after it.
    #[tokio::test]
    async fn a_write_that_finds_the_sqlite_worker_stopped_succeeds_on_a_new_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("store.db").display()), 2).await.unwrap();
        store.migrate().await.unwrap();
        stop_worker(&mut store.write().await.unwrap()).await;

        store.create_user(&user()).await.expect("the first write after the worker stopped");
        store
            .touch_session(gatehouse_core::ids::SessionId::generate(), Timestamp::from_millis(2_000))
            .await
            .expect("the next write");
        assert_eq!(store.count_users().await.unwrap(), 1);
        store.close().await;
    }
}
