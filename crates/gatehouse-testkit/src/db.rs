use gatehouse_store::Store;
use sqlx::{Connection, Executor};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on: `GATEHOUSE_TEST_PG_URL`, or the local trust-auth server.
pub fn postgres_admin_url() -> String {
    std::env::var("GATEHOUSE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        sqlx::any::install_default_drivers();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
                Self { url, backend, _dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for the PostgreSQL tests: {e}"));
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("GATEHOUSE_TEST_PG_URL is a URL");
                url.set_path(&name);
                Self { url: url.to_string(), backend, _dir: None, pg_name: Some(name) }
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, 5).await.expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's runtime; a thread with its own runtime can still await the cleanup.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                    let _ =
                        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
                }
            });
        })
        .join();
    }
}
