//! Gatehouse's HTTP layer. Handlers parse requests into domain types, call a service, and render the answer;
//! every error renders Hanko's `{"code","message"}` shape.

mod app;
mod client_address;
pub mod clock;
mod csrf;
mod dto;
mod error;
mod extract;
mod flow;
mod metrics;
mod routes;
mod server;
pub mod services;
mod state;

pub use app::{PublicApiDoc, app};
pub use error::ApiError;
/// The pure parts of the flow API, for the fuzz targets.
pub use flow::{ActionCall, FlowAction, FlowCall, FlowError, FlowInput, parse_flow_request, validate_inputs};
pub use routes::admin::{AdminApiDoc, admin_app};
pub use server::{Application, StartError};
pub use state::{AppState, PreparedSettings, StateError};
