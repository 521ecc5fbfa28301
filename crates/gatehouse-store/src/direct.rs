//! SQLite reads on the calling thread, for the lookup that every validated request makes.
//!
//! sqlx runs each SQLite connection on a worker thread of its own, so every statement is a hand-off to that thread
//! and back: two context switches that cost far more than a primary-key lookup in SQLite itself. Here a few
//! connections of our own answer such lookups in place. They never wait for a lock: when SQLite is busy (a
//! checkpoint, say) or every connection is in use, the caller is told to take the ordinary sqlx path instead.

use std::{
    path::Path,
    sync::{
        Mutex, TryLockError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi::ErrorCode};

/// Read-only connections to an SQLite file.
#[derive(Debug)]
pub(crate) struct DirectReader {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    closed: AtomicBool,
    /// Whether a failure has been logged as a warning yet; later ones are logged at debug level.
    warned: AtomicBool,
}

/// Why a direct read gave no answer; the caller falls back to sqlx.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// Every connection was in use, SQLite was busy, or the store is closed.
    Busy,
    Failed(rusqlite::Error),
}

impl DirectReader {
    /// Opens `count` connections to the database file at `path`, which must exist.
    pub(crate) fn open(path: &Path, count: usize) -> rusqlite::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let connections = (0..count.max(1))
            .map(|_| {
                let connection = Connection::open_with_flags(path, flags)?;
                // Reads only, and never a wait: a busy database sends the caller to the sqlx path instead.
                connection.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 0;")?;
                Ok(Mutex::new(connection))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            warned: AtomicBool::new(false),
        })
    }

    /// Stops answering; the connections close when the store is dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Logs a failed read. A failure here only costs speed (the caller asks sqlx), so it warns once, in case a
    /// persistent one quietly turns this path off, and stays quiet after that.
    pub(crate) fn report(&self, error: &rusqlite::Error) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(%error, "direct SQLite read failed; asking through sqlx");
        } else {
            tracing::warn!(%error, "direct SQLite read failed; asking through sqlx (further failures at debug level)");
        }
    }

    /// One row (or none) of `sql` with `params`, mapped by `map`, on the first free connection.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, Unanswered> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Unanswered::Busy);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.connections.len();
        let connection = (0..count)
            .find_map(|offset| match self.connections[(start + offset) % count].try_lock() {
                Ok(connection) => Some(connection),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            })
            .ok_or(Unanswered::Busy)?;
        let result =
            connection.prepare_cached(sql).and_then(|mut statement| statement.query_row(params, map).optional());
        result.map_err(|error| match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Unanswered::Busy,
            _ => Unanswered::Failed(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::named_params;

    use super::*;

    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("direct.db");
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").unwrap();
        writer.execute("INSERT INTO t VALUES (1, 'one')", ()).unwrap();
        (dir, path)
    }

    const SQL: &str = "SELECT v FROM t WHERE id = $1";

    #[test]
    fn answers_found_and_missing_rows() {
        let (_dir, path) = database();
        let reader = DirectReader::open(&path, 2).unwrap();
        let value = |id: i64| reader.query_row(SQL, named_params! { "$1": id }, |row| row.get::<_, String>(0)).unwrap();
        assert_eq!(value(1).as_deref(), Some("one"));
        assert_eq!(value(2), None);
    }

    #[test]
    fn binds_parameters_by_name_whatever_their_order() {
        let (_dir, path) = database();
        let reader = DirectReader::open(&path, 1).unwrap();
        let sql = "SELECT v FROM t WHERE v = $2 AND id = $1";
        let found = reader.query_row(sql, named_params! { "$1": 1, "$2": "one" }, |row| row.get::<_, String>(0));
        assert_eq!(found.unwrap().as_deref(), Some("one"));
    }

    #[test]
    fn a_closed_reader_answers_nothing() {
        let (_dir, path) = database();
        let reader = DirectReader::open(&path, 1).unwrap();
        reader.close();
        assert!(matches!(
            reader.query_row(SQL, named_params! { "$1": 1 }, |row| row.get::<_, String>(0)),
            Err(Unanswered::Busy)
        ));
    }

    #[test]
    fn never_writes() {
        let (_dir, path) = database();
        let reader = DirectReader::open(&path, 1).unwrap();
        let result = reader.query_row("DELETE FROM t RETURNING v", &[], |row| row.get::<_, String>(0));
        assert!(matches!(result, Err(Unanswered::Failed(_))));
    }

    #[test]
    fn with_every_connection_in_use_it_sends_the_caller_elsewhere_instead_of_waiting() {
        let (_dir, path) = database();
        let reader = DirectReader::open(&path, 2).unwrap();
        let _held: Vec<_> = reader.connections.iter().map(|c| c.lock().unwrap()).collect();
        let result = reader.query_row(SQL, named_params! { "$1": 1 }, |row| row.get::<_, String>(0));
        assert!(matches!(result, Err(Unanswered::Busy)));
    }

    #[test]
    fn a_locked_database_sends_the_caller_elsewhere_instead_of_waiting() {
        let (_dir, path) = database();
        let reader = DirectReader::open(&path, 1).unwrap();
        // An exclusive transaction in rollback-journal mode is the one thing that blocks WAL readers: switching
        // the journal mode needs it, and the reader must not wait for it to end.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;").unwrap();
        let result = reader.query_row(SQL, named_params! { "$1": 1 }, |row| row.get::<_, String>(0));
        assert!(matches!(result, Err(Unanswered::Busy)), "{result:?}");
    }
}
