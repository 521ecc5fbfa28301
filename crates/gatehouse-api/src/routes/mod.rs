//! One module per area of the API; each handler parses, calls a service, renders.

pub mod admin;
pub mod health;
pub mod login_page;
pub mod sessions;
pub mod thirdparty;
pub mod users;
pub mod well_known;
