//! The public API, driven over HTTP against a real server on port 0, on SQLite and on PostgreSQL.

mod admin;
mod csrf;
mod errors;
mod flow;
mod jose;
mod logs;
mod sessions;
mod thirdparty;
