//! The work behind the handlers: each service takes domain types and returns domain results.

pub mod admin_keys;
pub mod audit;
pub mod identity_providers;
pub mod keys;
pub mod maintenance;
pub mod rate_limit;
pub mod session;
pub mod settings;
pub mod thirdparty;
