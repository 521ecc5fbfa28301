//! Test support: a fresh database per test (SQLite file or PostgreSQL database), a real Gatehouse server on
//! port 0, helpers to drive it over HTTP, and a fault-injecting TCP proxy to put in front of its dependencies.

mod db;
pub mod fake_entra;
mod fault_proxy;
pub mod hanko;
mod server;

pub use db::{Backend, TestDb, postgres_admin_url};
pub use fault_proxy::{Fault, FaultProxy};
pub use server::{TEST_ADMIN_KEY, TEST_SECRET_KEY, TestServer, test_clock_start, test_config, test_task_intervals};

/// Runs an async scenario once on SQLite and once on PostgreSQL: `both_backends!(scenario_a, scenario_b);`
/// where each scenario is `async fn scenario_a(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )*
    };
}
