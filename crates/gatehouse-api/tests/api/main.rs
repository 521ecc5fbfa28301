//! The public API, driven over HTTP against a real server on port 0, on SQLite and on PostgreSQL.

mod admin;
mod bounded_writes;
mod csrf;
mod directory;
mod email_proof;
mod errors;
mod faults;
mod flow;
mod jose;
mod logs;
mod openapi;
mod provider_faults;
mod rate_limits;
mod sessions;
mod shutdown;
mod slow_clients;
mod tasks;
mod thirdparty;
mod users;
