//! Gatehouse's domain rules. Nothing in this crate performs I/O or reads the clock: callers pass `now`.

pub mod client_address;
pub mod clock;
pub mod config;
pub mod custom_claims;
pub mod duration;
pub mod email;
pub mod error;
pub mod first_seen;
pub mod hanko_import;
pub mod ids;
pub mod jwt_template;
pub mod linking;
pub mod microsoft;
pub mod origin;
pub mod rate_limit;
pub mod redirect;
pub mod session;
pub mod settings;
