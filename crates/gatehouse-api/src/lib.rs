//! Gatehouse's HTTP layer. Handlers parse requests into domain types, call the application
//! ([`gatehouse_app::App`]), and render the answer; every error renders Hanko's `{"code","message"}` shape. The
//! application never sees HTTP.

mod app;
mod client_address;
mod cookies;
mod csrf;
mod dto;
mod error;
mod extract;
mod flow;
mod metrics;
mod request_log;
mod routes;
mod server;
mod state;

pub use app::{PublicApiDoc, app};
pub use error::ApiError;
/// The pure parts of the flow API, for the fuzz targets.
pub use flow::{ActionCall, FlowAction, FlowCall, FlowError, FlowInput, parse_flow_request, validate_inputs};
pub use routes::admin::{AdminApiDoc, admin_app};
pub use server::{Application, StartError};
pub use state::{AppState, StateError};
