//! The flow API's answer, exactly as Hanko's frontend reads it: `actions` always an object, `payload` always
//! present, the HTTP status mirrored in `status`, errors in Hanko's codes.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use gatehouse_core::ids::FlowId;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::dto::{ClaimsView, UserView};

/// Hanko's flow error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowError {
    Technical,
    FlowExpired,
    OperationNotPermitted,
    FormDataInvalid,
    /// `form_data_invalid_error` caused by one input: the input carries the error too, which is what Hanko's
    /// elements show instead of the general "The submitted form data contains errors".
    InputInvalid(InvalidInput),
    Unauthorized,
    RateLimitExceeded,
}

/// An input the action refused, and why, for whoever reads the answer in the browser's developer tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidInput {
    pub input: &'static str,
    pub cause: &'static str,
}

impl InvalidInput {
    /// Hanko's `value_invalid_error`, as its flowpilot sets it on an input (with the cause: Hanko always shows it
    /// on inputs).
    fn error_body(self) -> FlowErrorBody {
        FlowErrorBody { code: "value_invalid_error", message: "The value is invalid.", cause: Some(self.cause) }
    }
}

impl FlowError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Technical => "technical_error",
            Self::FlowExpired => "flow_expired_error",
            Self::OperationNotPermitted => "operation_not_permitted_error",
            Self::FormDataInvalid | Self::InputInvalid(_) => "form_data_invalid_error",
            Self::Unauthorized => "unauthorized",
            Self::RateLimitExceeded => "rate_limit_exceeded",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::Technical => StatusCode::INTERNAL_SERVER_ERROR,
            Self::FlowExpired => StatusCode::GONE,
            Self::OperationNotPermitted => StatusCode::FORBIDDEN,
            Self::FormDataInvalid | Self::InputInvalid(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Technical => "Something went wrong.",
            Self::FlowExpired => "The flow has expired.",
            Self::OperationNotPermitted => "The operation is not permitted.",
            Self::FormDataInvalid | Self::InputInvalid(_) => "Form data invalid.",
            Self::Unauthorized => "The session is invalid.",
            Self::RateLimitExceeded => "The rate limit has been exceeded.",
        }
    }

    /// An `error` state that belongs to no flow (unknown or expired flow, no session, bad request).
    pub fn standalone(self) -> Response {
        FlowAnswer {
            name: "error",
            payload: FlowPayload::default(),
            csrf_token: String::new(),
            actions: BTreeMap::new(),
            error: Some(self),
        }
        .into_response_with(HeaderMap::new())
    }
}

/// One state, rendered.
#[derive(Debug)]
pub struct FlowAnswer {
    pub name: &'static str,
    pub payload: FlowPayload,
    pub csrf_token: String,
    pub actions: BTreeMap<String, FlowAction>,
    pub error: Option<FlowError>,
}

/// Hanko's flow state object, the answer of every flow request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowState {
    /// The state: `preflight`, `login_init`, `registration_init`, `profile_init`, `thirdparty`, `success`,
    /// `account_deleted` or `error`.
    name: &'static str,
    /// The HTTP status, mirrored.
    status: u16,
    payload: FlowPayload,
    /// Send it back with the next action; every answer brings a new one.
    csrf_token: String,
    /// The actions this state offers, by name; `{}` when none.
    actions: BTreeMap<String, FlowAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<FlowErrorBody>,
}

/// Hanko's flow error: one of its codes and a message; on an input, why the value was refused.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FlowErrorBody {
    code: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'static str>,
}

/// What a state carries besides its actions; each state fills the parts it has.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct FlowPayload {
    /// `thirdparty`: the provider URL to go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// `success`: the new session's claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsView>,
    /// `success` and `profile_init`: the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    /// `profile_init`: the user's live sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionView>>,
    /// `success` of a login: how the user signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login: Option<LastLogin>,
}

/// One of the user's sessions, as `<hanko-profile>` lists them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    /// The session this request is made with.
    pub current: bool,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_used: String,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LastLogin {
    /// `third_party`.
    pub login_method: &'static str,
    pub third_party_provider: String,
}

impl FlowAnswer {
    pub fn into_response_with(mut self, mut headers: HeaderMap) -> Response {
        let status = self.error.map_or(StatusCode::OK, FlowError::status);
        if let Some(FlowError::InputInvalid(invalid)) = self.error {
            // The state is the one the action ran in, so its action with this input is the one that was refused.
            for input in self.actions.values_mut().filter_map(|action| action.inputs.get_mut(invalid.input)) {
                input.error = Some(invalid.error_body());
            }
        }
        let body = FlowState {
            name: self.name,
            status: status.as_u16(),
            payload: self.payload,
            csrf_token: self.csrf_token,
            actions: self.actions,
            error: self.error.map(|error| FlowErrorBody { code: error.code(), message: error.message(), cause: None }),
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (status, headers, Json(body)).into_response()
    }
}

/// An action of a flow state, with its `href` addressing this flow.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FlowAction {
    action: String,
    /// Where to send it: `/<flow>?action=<name>%40<flow id>`.
    href: String,
    inputs: BTreeMap<String, FlowInput>,
    description: String,
}

impl FlowAction {
    pub fn new(path: &str, flow_id: FlowId, name: &str, description: &str, inputs: Vec<FlowInput>) -> Self {
        Self {
            action: name.to_owned(),
            href: format!("{path}?action={name}%40{flow_id}"),
            inputs: inputs.into_iter().map(|input| (input.name.clone(), input)).collect(),
            description: description.to_owned(),
        }
    }

    pub fn inputs(&self) -> impl Iterator<Item = &FlowInput> {
        self.inputs.values()
    }
}

/// An input of an action, as Hanko describes it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FlowInput {
    name: String,
    /// `string` or `boolean`.
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    required: bool,
    hidden: bool,
    /// The only values accepted, with the text to show for each.
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_values: Option<Vec<AllowedValue>>,
    /// Why the value sent was refused, on an answer with `form_data_invalid_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<FlowErrorBody>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AllowedValue {
    value: String,
    /// The display text.
    name: String,
}

impl FlowInput {
    /// A hidden input: Gatehouse's flows only have inputs that the frontend fills in itself.
    pub fn hidden(name: &str, kind: &'static str, required: bool) -> Self {
        Self { name: name.to_owned(), kind, required, hidden: true, allowed_values: None, error: None }
    }

    /// Accepts only these `(value, display text)` pairs.
    pub fn allowing(mut self, values: impl IntoIterator<Item = (String, String)>) -> Self {
        self.allowed_values = Some(values.into_iter().map(|(value, name)| AllowedValue { value, name }).collect());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Whether `value` is one this input accepts: any value, or one of its allowed values.
    pub fn accepts(&self, value: &serde_json::Value) -> bool {
        self.allowed_values.as_ref().is_none_or(|allowed| allowed.iter().any(|a| value.as_str() == Some(&a.value)))
    }
}
