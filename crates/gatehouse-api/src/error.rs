//! The one error type of the HTTP layer. It always renders Hanko's `{"code": <status>, "message": <text>}`; a
//! validation error adds `errors: [{"field", "message"}]` so a form can show each message next to its field.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use gatehouse_core::settings::FieldIssue;
use serde::Serialize;
use utoipa::{
    Modify, PartialSchema, ToSchema,
    openapi::{
        Content, OpenApi, Ref, RefOr, Required, ResponseBuilder,
        path::{Operation, ParameterIn},
    },
};

#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    fields: Vec<FieldIssue>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), fields: Vec::new() }
    }

    /// 422 naming every invalid field.
    pub fn invalid_fields(fields: Vec<FieldIssue>) -> Self {
        let message = match fields.as_slice() {
            [only] => only.to_string(),
            _ => format!("{} fields are invalid", fields.len()),
        };
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, message, fields }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldIssue::new(field, message)])
    }

    /// An error with the status's standard text, e.g. `401 Unauthorized`.
    pub fn status(status: StatusCode) -> Self {
        Self::new(status, status.canonical_reason().unwrap_or("Error"))
    }

    pub fn unauthorized() -> Self {
        Self::status(StatusCode::UNAUTHORIZED)
    }

    pub fn not_found() -> Self {
        Self::status(StatusCode::NOT_FOUND)
    }

    /// A failure the client cannot fix; the cause is logged here and never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::status(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn status_code(&self) -> StatusCode {
        self.status
    }
}

impl From<gatehouse_store::StoreError> for ApiError {
    /// A database that cannot be reached is 503, which a client may retry and which never reads as "invalid";
    /// anything else is 500.
    fn from(error: gatehouse_store::StoreError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "database unavailable; answering 503");
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE);
        }
        Self::internal(error)
    }
}

/// The message of every 503 for a database outage.
pub const DATABASE_UNAVAILABLE: &str = "database unavailable";

impl From<gatehouse_app::settings::SettingsError> for ApiError {
    fn from(error: gatehouse_app::settings::SettingsError) -> Self {
        Self::internal(error)
    }
}

impl From<gatehouse_app::sessions::SessionError> for ApiError {
    fn from(error: gatehouse_app::sessions::SessionError) -> Self {
        use gatehouse_app::sessions::SessionError;
        match error {
            SessionError::UnknownUser => Self::unauthorized(),
            SessionError::Store(error) => error.into(),
            SessionError::Signing(error) => Self::internal(error),
            // The operator's to fix, and nothing secret: say it to the client as well as to the log.
            SessionError::TooLarge(error) => {
                tracing::error!(%error, "refused to mint a session");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

impl From<gatehouse_app::identity_providers::SettingsChangeError> for ApiError {
    fn from(error: gatehouse_app::identity_providers::SettingsChangeError) -> Self {
        use gatehouse_app::identity_providers::SettingsChangeError;
        match error {
            SettingsChangeError::Invalid(issues) => Self::invalid_fields(issues),
            SettingsChangeError::Stale(_) | SettingsChangeError::InConfigFile => {
                Self::new(StatusCode::CONFLICT, error.to_string())
            }
            SettingsChangeError::NoSuchCredential => Self::new(StatusCode::NOT_FOUND, error.to_string()),
            SettingsChangeError::Unusable(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
            SettingsChangeError::Generate(_) | SettingsChangeError::Settings(_) => Self::internal(error),
        }
    }
}

impl From<gatehouse_app::thirdparty::AdminConsentError> for ApiError {
    fn from(error: gatehouse_app::thirdparty::AdminConsentError) -> Self {
        use gatehouse_app::thirdparty::AdminConsentError;
        match error {
            AdminConsentError::NotConfigured => Self::new(StatusCode::CONFLICT, error.to_string()),
            AdminConsentError::Tenant(problem) => Self::invalid_field("tenant", problem.to_string()),
        }
    }
}

/// Hanko's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    code: u16,
    message: String,
    /// Each invalid field, on a 422 from a validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    field: String,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.status.as_u16(),
            message: self.message,
            errors: self
                .fields
                .into_iter()
                .map(|issue| FieldError { field: issue.field, message: issue.message })
                .collect(),
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Adds to every operation of a document the error answers that the shared extractors and layers give, so that
/// no path has to list them: 400 for a malformed path or query parameter; 400, 413, 415 and 422 for a required
/// body that is malformed, too large, of another content type or of the wrong shape; and 401 everywhere behind
/// the admin key. A status that a path documents itself is left as it is.
#[derive(Debug)]
pub struct SharedErrorAnswers {
    pub behind_admin_key: bool,
}

impl SharedErrorAnswers {
    fn statuses(&self, operation: &Operation) -> Vec<(&'static str, &'static str)> {
        let mut statuses = Vec::new();
        if self.behind_admin_key {
            statuses.push(("401", "no or unknown admin key"));
        }
        let mut parameters = operation.parameters.iter().flatten();
        if parameters
            .any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query)))
        {
            statuses.push(("400", "a malformed parameter"));
        }
        let required_body =
            matches!(&operation.request_body, Some(RefOr::T(body)) if body.required == Some(Required::True));
        if required_body {
            statuses.extend([
                ("400", "a body that does not parse"),
                ("413", "a body over the size limit"),
                ("415", "a body of another content type"),
                ("422", "a body of the wrong shape"),
            ]);
        }
        statuses
    }
}

impl Modify for SharedErrorAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        let error_body = Content::new(Some(Ref::from_schema_name(ErrorBody::name())));
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for (status, description) in self.statuses(operation) {
                    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content("application/json", error_body.clone())
                            .into()
                    });
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
        ErrorBody::schemas(&mut schemas);
        components.schemas.extend(schemas);
    }
}

/// Gives every plain error response (from the router's 404/405, body limits, timeouts or a
/// caught panic) Hanko's error shape, so clients never see a bare text error.
pub async fn render_plain_errors<B>(response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = response.map(axum::body::Body::new);
    let status = response.status();
    // Bodies the layers and the router make are empty or plain text; JSON and HTML pages are ours already.
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if (status.is_client_error() || status.is_server_error()) && is_plain {
        let (parts, _) = response.into_parts();
        let mut rendered = ApiError::status(status).into_response();
        for name in [header::ALLOW, header::RETRY_AFTER, header::VARY] {
            if let Some(value) = parts.headers.get(&name) {
                rendered.headers_mut().insert(name, value.clone());
            }
        }
        for (name, value) in parts.headers.iter().filter(|(name, _)| name.as_str().starts_with("access-control-")) {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
        return rendered;
    }
    response
}
