//! The flow API's answer, exactly as Hanko's frontend reads it: `actions` always an object, `payload` always
//! present, the HTTP status mirrored in `status`, errors in Hanko's codes.

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

/// Hanko's flow error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowError {
    Technical,
    FlowExpired,
    OperationNotPermitted,
    FormDataInvalid,
    Unauthorized,
    RateLimitExceeded,
}

impl FlowError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Technical => "technical_error",
            Self::FlowExpired => "flow_expired_error",
            Self::OperationNotPermitted => "operation_not_permitted_error",
            Self::FormDataInvalid => "form_data_invalid_error",
            Self::Unauthorized => "unauthorized",
            Self::RateLimitExceeded => "rate_limit_exceeded",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::Technical => StatusCode::INTERNAL_SERVER_ERROR,
            Self::FlowExpired => StatusCode::GONE,
            Self::OperationNotPermitted => StatusCode::FORBIDDEN,
            Self::FormDataInvalid => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Technical => "Something went wrong.",
            Self::FlowExpired => "The flow has expired.",
            Self::OperationNotPermitted => "The operation is not permitted.",
            Self::FormDataInvalid => "Form data invalid.",
            Self::Unauthorized => "The session is invalid.",
            Self::RateLimitExceeded => "The rate limit has been exceeded.",
        }
    }

    pub fn json(self) -> Value {
        json!({ "code": self.code(), "message": self.message() })
    }

    /// An `error` state that belongs to no flow (unknown or expired flow, no session, bad request).
    pub fn standalone(self) -> Response {
        FlowAnswer {
            name: "error",
            payload: Map::new(),
            csrf_token: String::new(),
            actions: Map::new(),
            error: Some(self),
        }
        .into_response_with(HeaderMap::new())
    }
}

/// One state, rendered.
#[derive(Debug)]
pub struct FlowAnswer {
    pub name: &'static str,
    pub payload: Map<String, Value>,
    pub csrf_token: String,
    pub actions: Map<String, Value>,
    pub error: Option<FlowError>,
}

impl FlowAnswer {
    pub fn into_response_with(self, mut headers: HeaderMap) -> Response {
        let status = self.error.map_or(StatusCode::OK, FlowError::status);
        let mut body = json!({
            "name": self.name,
            "status": status.as_u16(),
            "payload": self.payload,
            "csrf_token": self.csrf_token,
            "actions": self.actions,
        });
        if let Some(error) = self.error {
            body["error"] = error.json();
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (status, headers, Json(body)).into_response()
    }
}

/// An input of an action, as Hanko describes it.
pub fn input(name: &str, kind: &str, required: bool, hidden: bool) -> Value {
    let mut input = json!({ "name": name, "type": kind, "hidden": hidden });
    if required {
        input["required"] = json!(true);
    }
    input
}

/// An action of a flow state, with its `href` addressing this flow.
pub fn action(path: &str, flow_id: uuid::Uuid, name: &str, description: &str, inputs: Map<String, Value>) -> Value {
    json!({
        "action": name,
        "href": format!("{path}?action={name}%40{flow_id}"),
        "inputs": inputs,
        "description": description,
    })
}
