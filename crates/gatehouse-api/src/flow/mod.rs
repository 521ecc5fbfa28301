//! Hanko's flow API (`POST /login`, `/registration`, `/profile`), what `<hanko-auth>` and `<hanko-profile>`
//! speak. A flow is a small state machine kept in the database, so any instance can continue any flow; each
//! answer carries the state's name, payload and the actions it offers, and a fresh CSRF token.

mod actions;
mod response;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use self::response::FlowError;
use crate::{AppState, services::audit::RequestMeta};

/// How long a flow may sit between two actions.
pub const FLOW_LIFETIME_MS: i64 = 60 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowName {
    Login,
    Registration,
    Profile,
}

impl FlowName {
    fn path(self) -> &'static str {
        match self {
            Self::Login => "/login",
            Self::Registration => "/registration",
            Self::Profile => "/profile",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Preflight,
    LoginInit,
    RegistrationInit,
    ProfileInit,
    Thirdparty,
    Success,
    AccountDeleted,
    Error,
}

impl StateName {
    fn as_str(self) -> &'static str {
        match self {
            Self::Preflight => "preflight",
            Self::LoginInit => "login_init",
            Self::RegistrationInit => "registration_init",
            Self::ProfileInit => "profile_init",
            Self::Thirdparty => "thirdparty",
            Self::Success => "success",
            Self::AccountDeleted => "account_deleted",
            Self::Error => "error",
        }
    }
}

/// What a flow remembers between actions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowData {
    pub name: FlowName,
    pub state: StateName,
    /// The signed-in user a profile flow belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// The provider URL of the `thirdparty` state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
}

impl FlowData {
    /// The first real state of this flow, where `register_client_capabilities` and `back` lead.
    fn init_state(&self) -> StateName {
        match self.name {
            FlowName::Login => StateName::LoginInit,
            FlowName::Registration => StateName::RegistrationInit,
            FlowName::Profile => StateName::ProfileInit,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionQuery {
    action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ActionBody {
    #[serde(default)]
    input_data: Map<String, Value>,
    #[serde(default)]
    csrf_token: String,
}

/// One request against a flow endpoint.
#[derive(Debug)]
pub struct FlowRequest {
    pub name: FlowName,
    pub headers: HeaderMap,
    pub meta: RequestMeta,
}

async fn handle(state: AppState, request: FlowRequest, query: ActionQuery, body: Bytes) -> Response {
    match query.action {
        None => actions::start(&state, &request).await,
        Some(action) => {
            let Some((action, flow_id)) = action.split_once('@') else {
                return FlowError::OperationNotPermitted.standalone();
            };
            let Ok(flow_id) = Uuid::parse_str(flow_id) else {
                return FlowError::OperationNotPermitted.standalone();
            };
            // Only JSON reaches this point: the router's CSRF guard (`crate::csrf`) refuses any other content type.
            let body: ActionBody = match serde_json::from_slice(&body) {
                Ok(body) => body,
                Err(_) if body.is_empty() => ActionBody::default(),
                Err(_) => return FlowError::FormDataInvalid.standalone(),
            };
            actions::run(&state, &request, flow_id, action, body.input_data, &body.csrf_token).await
        }
    }
}

macro_rules! flow_endpoint {
    ($name:ident, $flow:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            meta: RequestMeta,
            headers: HeaderMap,
            Query(query): Query<ActionQuery>,
            body: Bytes,
        ) -> Response {
            handle(state, FlowRequest { name: $flow, headers, meta }, query, body).await
        }
    };
}

flow_endpoint!(login, FlowName::Login);
flow_endpoint!(registration, FlowName::Registration);
flow_endpoint!(profile, FlowName::Profile);
