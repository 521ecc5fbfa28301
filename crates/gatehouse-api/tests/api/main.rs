//! The public API, driven over HTTP against a real server on port 0, on SQLite and on PostgreSQL.

mod admin;
mod email_proof;
mod errors;
mod flow;
mod jose;
mod logs;
mod openapi;
mod sessions;
mod thirdparty;
