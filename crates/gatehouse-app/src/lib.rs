//! Gatehouse's application: everything the server does, with no HTTP in it. It takes domain types and an
//! injected clock, returns typed errors, and owns its background tasks. `gatehouse-api` maps its answers onto
//! Hanko's HTTP API; the CLI builds only the parts a command needs.

pub mod admin_keys;
mod app;
pub mod audit;
pub mod flows;
pub mod hanko_import;
pub mod identity_providers;
pub mod keys;
pub mod maintenance;
pub mod rate_limit;
pub mod sessions;
pub mod settings;
pub mod tasks;
pub mod thirdparty;
pub mod token_exchange;
pub mod users;

pub use app::{App, AppError, PreparedSettings};
pub use audit::RequestMeta;
