//! Hanko's flow API (`POST /login`, `/registration`, `/profile`), what `<hanko-auth>` and `<hanko-profile>`
//! speak. A flow is a small state machine kept in the database, so any instance can continue any flow; each
//! answer carries the state's name, payload and the actions it offers, and a fresh CSRF token.

mod actions;
mod response;

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::Response,
};
use gatehouse_core::ids::{FlowId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use self::response::{FlowAction, FlowError, FlowInput, FlowState};
use gatehouse_app::RequestMeta;

use crate::{AppState, extract::Meta};

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
    pub user_id: Option<UserId>,
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

/// The body of an action request.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ActionBody {
    /// The action's inputs by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    input_data: Map<String, Value>,
    /// The `csrf_token` of the state the action belongs to.
    #[serde(default)]
    csrf_token: String,
}

/// An action request, parsed: which action of which flow, with what inputs.
#[derive(Debug)]
pub struct ActionCall {
    pub action: String,
    pub flow_id: FlowId,
    pub input_data: Map<String, Value>,
    pub csrf_token: String,
}

/// What a flow request asks for.
#[derive(Debug)]
pub enum FlowCall {
    /// No `action` parameter: a new flow.
    Start,
    Action(ActionCall),
}

/// Parses a flow request: the query's `action` parameter (`<name>@<flow id>`; the first one, as Hanko reads it)
/// and the JSON body, which Hanko's SDK may leave out. Whatever the request, a refusal is a flow error, so that
/// the answer is always a flow state.
pub fn parse_flow_request(query: Option<&str>, body: &[u8]) -> Result<FlowCall, FlowError> {
    let action = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "action")
        .map(|(_, value)| value);
    let Some(action) = action else { return Ok(FlowCall::Start) };
    let (action, flow_id) = action.split_once('@').ok_or(FlowError::OperationNotPermitted)?;
    let flow_id = flow_id.parse::<FlowId>().map_err(|_| FlowError::OperationNotPermitted)?;
    let body: ActionBody = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(_) if body.is_empty() => ActionBody::default(),
        Err(_) => return Err(FlowError::FormDataInvalid),
    };
    Ok(FlowCall::Action(ActionCall {
        action: action.to_owned(),
        flow_id,
        input_data: body.input_data,
        csrf_token: body.csrf_token,
    }))
}

/// Required inputs present (and not null), and values in `allowed_values` where the input lists them.
pub fn validate_inputs(action: &FlowAction, input_data: &Map<String, Value>) -> Result<(), FlowError> {
    for input in action.inputs() {
        match input_data.get(input.name()).filter(|value| !value.is_null()) {
            None if input.is_required() => return Err(FlowError::FormDataInvalid),
            Some(value) if !input.accepts(value) => return Err(FlowError::FormDataInvalid),
            _ => {}
        }
    }
    Ok(())
}

/// One request against a flow endpoint.
#[derive(Debug)]
pub struct FlowRequest {
    pub name: FlowName,
    pub headers: HeaderMap,
    pub meta: RequestMeta,
}

async fn handle(state: AppState, request: FlowRequest, query: Option<String>, body: Bytes) -> Response {
    match parse_flow_request(query.as_deref(), &body) {
        Ok(FlowCall::Start) => actions::start(&state, &request).await,
        Ok(FlowCall::Action(call)) => actions::run(&state, &request, call).await,
        Err(error) => error.standalone(),
    }
}

macro_rules! flow_endpoint {
    ($name:ident, $flow:expr, $path:literal) => {
        #[doc = concat!("`POST ", $path, "`: without `action`, starts a flow; with it, runs that action of the flow.")]
        #[utoipa::path(post, path = $path, tag = "flow", params(("action" = Option<String>, Query,
                description = "`<action name>@<flow id>`, from an action's `href`; without it, a new flow starts")),
                    request_body(content = Option<ActionBody>, description = "none to start a flow"),
                    responses(
                        (status = 200, body = FlowState),
                        (status = 400, body = FlowState, description = "`form_data_invalid_error`"),
                        (status = 401, body = FlowState, description = "`unauthorized`: no valid session (profile)"),
                        (status = 403, body = FlowState, description = "`operation_not_permitted_error`"),
                        (status = 410, body = FlowState, description = "`flow_expired_error`"),
                        (status = 429, body = FlowState, description = "`rate_limit_exceeded`"),
                        (status = 500, body = FlowState, description = "`technical_error`"),
                    ))]
        pub async fn $name(
            State(state): State<AppState>,
            Meta(meta): Meta,
            headers: HeaderMap,
            RawQuery(query): RawQuery,
            body: Bytes,
        ) -> Response {
            handle(state, FlowRequest { name: $flow, headers, meta }, query, body).await
        }
    };
}

flow_endpoint!(login, FlowName::Login, "/login");
flow_endpoint!(registration, FlowName::Registration, "/registration");
flow_endpoint!(profile, FlowName::Profile, "/profile");
