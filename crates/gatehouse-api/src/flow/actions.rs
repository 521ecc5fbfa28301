//! Starting flows, checking and running actions, rendering states.

use std::collections::BTreeMap;

use axum::{http::HeaderMap, response::Response};
use gatehouse_app::{
    flows::FoundFlow,
    sessions::Authenticated,
    thirdparty::{StartError, StartRequest},
    token_exchange::{ExchangeError, Exchanged, Refused},
    users::EmailRemoval,
};
use gatehouse_core::ids::{EmailId, FlowId, SessionId};
use gatehouse_store::{SessionRecord, UserRecord};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    ActionCall, FlowData, FlowName, FlowRequest, StateName,
    response::{FlowAction, FlowAnswer, FlowError, FlowInput, FlowPayload, InvalidInput, LastLogin, SessionView},
    validate_inputs,
};
use crate::{
    AppState, cookies,
    dto::{ClaimsView, UserView},
    extract::session_token,
};

/// 32 characters of `[0-9A-Za-z]`, like Hanko's.
fn csrf_token() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    gatehouse_crypto::random::bytes::<32>().iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// The request's session. A database that cannot say is a technical error, never "not signed in".
async fn session(state: &AppState, request: &FlowRequest) -> Result<Option<Authenticated>, FlowError> {
    let Some(token) = session_token(&request.headers, &state.config().session.cookie.name) else {
        return Ok(None);
    };
    state.sessions().authenticate(token).await.map_err(|_| FlowError::Technical)
}

/// The signed-in user's view for the profile: their record and live sessions.
struct Profile {
    user: UserRecord,
    sessions: Vec<SessionRecord>,
    current_session: SessionId,
}

async fn profile(state: &AppState, session: &Authenticated) -> Result<Profile, FlowError> {
    let user = state
        .users()
        .find(session.user_id())
        .await
        .map_err(|_| FlowError::Technical)?
        .ok_or(FlowError::Unauthorized)?;
    let sessions = state.sessions().list(user.id).await.map_err(|_| FlowError::Technical)?;
    Ok(Profile { user, sessions, current_session: session.session.id })
}

fn provider_input(state: &AppState, exclude: &[&str]) -> Option<FlowInput> {
    let providers: Vec<(String, String)> = state
        .third_party()
        .enabled_providers()
        .into_iter()
        .filter(|provider| !exclude.contains(provider))
        .map(|provider| (provider.to_owned(), crate::dto::provider_display_name(provider).to_owned()))
        .collect();
    if providers.is_empty() {
        return None;
    }
    Some(FlowInput::hidden("provider", "string", true).allowing(providers))
}

fn oauth_inputs(provider: FlowInput) -> Vec<FlowInput> {
    vec![
        FlowInput::hidden("redirect_to", "string", true),
        provider,
        FlowInput::hidden("code_verifier", "string", false),
    ]
}

/// The actions a state offers, fully described.
fn offered(
    state: &AppState,
    flow_id: FlowId,
    data: &FlowData,
    profile: Option<&Profile>,
) -> BTreeMap<String, FlowAction> {
    let path = data.name.path();
    let mut actions = BTreeMap::new();
    let mut offer = |name: &str, description: &str, inputs: Vec<FlowInput>| {
        actions.insert(name.to_owned(), FlowAction::new(path, flow_id, name, description, inputs));
    };
    match data.state {
        StateName::Preflight => offer(
            "register_client_capabilities",
            "Send the client capabilities.",
            vec![
                FlowInput::hidden("webauthn_available", "boolean", true),
                FlowInput::hidden("webauthn_conditional_mediation_available", "boolean", false),
                FlowInput::hidden("webauthn_platform_authenticator_available", "boolean", false),
            ],
        ),
        StateName::LoginInit | StateName::RegistrationInit => {
            if let Some(provider) = provider_input(state, &[]) {
                offer(
                    "thirdparty_oauth",
                    "Sign up/sign in with a third party provider via OAuth.",
                    oauth_inputs(provider),
                );
            }
        }
        StateName::Thirdparty => {
            offer(
                "exchange_token",
                "Exchange a one time token.",
                vec![FlowInput::hidden("token", "string", true), FlowInput::hidden("code_verifier", "string", false)],
            );
            offer("back", "Navigate one step back.", Vec::new());
        }
        StateName::ProfileInit => {
            if let Some(profile) = profile {
                let session_id = FlowInput::hidden("session_id", "string", true).allowing(
                    profile
                        .sessions
                        .iter()
                        .filter(|s| s.id != profile.current_session)
                        .map(|s| (s.id.to_string(), s.id.to_string())),
                );
                offer("session_delete", "Delete a session.", vec![session_id]);
                let email_id = FlowInput::hidden("email_id", "string", true).allowing(
                    profile.user.emails.iter().filter(|e| !e.is_primary).map(|e| (e.id.to_string(), e.address.clone())),
                );
                offer("email_delete", "Delete an email address.", vec![email_id]);
                let connected: Vec<&str> = profile.user.identities.iter().map(|i| i.provider_id.as_str()).collect();
                if let Some(provider) = provider_input(state, &connected) {
                    offer(
                        "connect_thirdparty_oauth_provider",
                        "Connect a third party account.",
                        oauth_inputs(provider),
                    );
                }
                if state.config().account.allow_deletion {
                    offer("account_delete", "Delete the account.", Vec::new());
                }
            }
        }
        StateName::Success | StateName::AccountDeleted | StateName::Error => {}
    }
    actions
}

fn payload(data: &FlowData, profile: Option<&Profile>) -> FlowPayload {
    match (data.state, profile) {
        (StateName::Thirdparty, _) => FlowPayload { redirect_url: data.redirect_url.clone(), ..FlowPayload::default() },
        (StateName::ProfileInit, Some(profile)) => {
            let sessions = profile
                .sessions
                .iter()
                .map(|s| SessionView {
                    id: s.id.into(),
                    current: s.id == profile.current_session,
                    user_agent: s.user_agent.clone(),
                    ip_address: s.ip_address.clone(),
                    created_at: s.created_at.rfc3339(),
                    last_used: s.last_used.rfc3339(),
                    expires_at: s.expires_at.rfc3339(),
                })
                .collect();
            FlowPayload {
                user: Some(UserView::from(&profile.user)),
                sessions: Some(sessions),
                ..FlowPayload::default()
            }
        }
        _ => FlowPayload::default(),
    }
}

/// What an action leads to: the next state, and what its answer carries beyond the state's own payload.
struct Step {
    next: FlowData,
    payload: Option<FlowPayload>,
    headers: HeaderMap,
    error: Option<FlowError>,
}

impl Step {
    fn to(next: FlowData) -> Self {
        Self { next, payload: None, headers: HeaderMap::new(), error: None }
    }
}

/// Renders the flow's next step. `loaded` is the profile as read before an action that changed nothing outside
/// the flow, still current; otherwise the profile is read when the next state shows it.
async fn render(
    state: &AppState,
    flow_id: FlowId,
    step: Step,
    csrf_token: String,
    session: Option<&Authenticated>,
    loaded: Option<Profile>,
) -> Response {
    let Step { next: data, payload: step_payload, headers, error } = step;
    let data = &data;
    let profile = match (data.state, session, loaded) {
        (StateName::ProfileInit, Some(_), Some(loaded)) => Some(loaded),
        (StateName::ProfileInit, Some(session), None) => match profile(state, session).await {
            Ok(profile) => Some(profile),
            Err(error) => return error.standalone(),
        },
        _ => None,
    };
    FlowAnswer {
        name: data.state.as_str(),
        payload: step_payload.unwrap_or_else(|| payload(data, profile.as_ref())),
        csrf_token,
        actions: offered(state, flow_id, data, profile.as_ref()),
        error,
    }
    .into_response_with(headers)
}

pub async fn start(state: &AppState, request: &FlowRequest) -> Response {
    let session = match session(state, request).await {
        Ok(session) => session,
        Err(error) => return error.standalone(),
    };
    if request.name == FlowName::Profile && session.is_none() {
        return FlowError::Unauthorized.standalone();
    }
    if !state.admit_new_flow(&request.meta).await {
        return FlowError::RateLimitExceeded.standalone();
    }
    let data = FlowData {
        name: request.name,
        state: StateName::Preflight,
        user_id: session.as_ref().map(|s| s.claims.sub).filter(|_| request.name == FlowName::Profile),
        redirect_url: None,
    };
    let csrf = csrf_token();
    let Ok(record) = state.flows().create(serde_json::to_string(&data).unwrap_or_default(), csrf.clone()).await else {
        return FlowError::Technical.standalone();
    };
    render(state, record.id, Step::to(data), csrf, session.as_ref(), None).await
}

pub async fn run(state: &AppState, request: &FlowRequest, call: ActionCall) -> Response {
    let ActionCall { action: action_name, flow_id, input_data, csrf_token: csrf } = call;
    let action_name = action_name.as_str();
    let record = match state.flows().find(flow_id).await {
        Ok(FoundFlow::Live(record)) => record,
        Ok(FoundFlow::Missing) => return FlowError::OperationNotPermitted.standalone(),
        Ok(FoundFlow::Expired) => return FlowError::FlowExpired.standalone(),
        Err(_) => return FlowError::Technical.standalone(),
    };
    if !gatehouse_crypto::digest::constant_time_eq(record.csrf_token.as_bytes(), csrf.as_bytes()) {
        return FlowError::OperationNotPermitted.standalone();
    }
    let Ok(data) = serde_json::from_str::<FlowData>(&record.data) else {
        return FlowError::Technical.standalone();
    };
    if data.name != request.name {
        return FlowError::OperationNotPermitted.standalone();
    }
    let session = match session(state, request).await {
        Ok(session) => session,
        Err(error) => return error.standalone(),
    };
    if data.name == FlowName::Profile && (session.is_none() || session.as_ref().map(|s| s.claims.sub) != data.user_id) {
        return FlowError::Unauthorized.standalone();
    }
    let current_profile = match (data.state, &session) {
        (StateName::ProfileInit, Some(session)) => match profile(state, session).await {
            Ok(profile) => Some(profile),
            Err(error) => return error.standalone(),
        },
        _ => None,
    };
    let offered = offered(state, flow_id, &data, current_profile.as_ref());
    let Some(definition) = offered.get(action_name) else {
        return FlowError::OperationNotPermitted.standalone();
    };
    let next_csrf = csrf_token();
    let action = validate_inputs(definition, &input_data).and_then(|()| Action::parse(action_name, &input_data));
    // Of concurrent actions on one flow, exactly one may act beyond it (consume a token, delete something): it
    // claims the step first and rotates the CSRF token, so the others are refused before they touch anything.
    let mut version = record.version;
    let acts_beyond_the_flow = action.as_ref().is_ok_and(Action::acts_beyond_the_flow);
    if acts_beyond_the_flow {
        match state.flows().advance(flow_id, version, &record.data, &next_csrf).await {
            Ok(true) => version += 1,
            Ok(false) => return FlowError::OperationNotPermitted.standalone(),
            Err(_) => return FlowError::Technical.standalone(),
        }
    }
    let context =
        Context { state, request, flow_id, data: &data, session: session.as_ref(), profile: current_profile.as_ref() };
    let outcome = match action {
        Ok(action) => execute(&context, action).await,
        Err(error) => Err(error),
    };
    // A client error keeps the state (the page shows the error); a server error ends the flow.
    let step = match outcome {
        Ok(step) => step,
        Err(error) if error.status().is_client_error() => Step { error: Some(error), ..Step::to(data.clone()) },
        Err(error) => Step { error: Some(error), ..Step::to(FlowData { state: StateName::Error, ..data.clone() }) },
    };
    let saved = state
        .flows()
        .advance(flow_id, version, &serde_json::to_string(&step.next).unwrap_or_default(), &next_csrf)
        .await;
    match saved {
        Ok(true) => {}
        Ok(false) => return FlowError::OperationNotPermitted.standalone(),
        Err(_) => return FlowError::Technical.standalone(),
    }
    let still_current = if acts_beyond_the_flow { None } else { current_profile };
    render(state, flow_id, step, next_csrf, session.as_ref(), still_current).await
}

/// An action of a flow, with its inputs, once they were checked against what the state offers.
#[derive(Debug, PartialEq, Eq)]
enum Action<'a> {
    RegisterClientCapabilities,
    Back,
    /// Sign in (or up) with a provider; in the profile flow, connect one to the account.
    ThirdpartyOauth(OauthInputs<'a>),
    ExchangeToken {
        token: &'a str,
        code_verifier: Option<&'a str>,
    },
    SessionDelete {
        session_id: SessionId,
    },
    EmailDelete {
        email_id: EmailId,
    },
    AccountDelete,
}

#[derive(Debug, PartialEq, Eq)]
struct OauthInputs<'a> {
    provider: &'a str,
    redirect_to: Option<&'a str>,
    code_verifier: Option<&'a str>,
}

impl<'a> Action<'a> {
    /// The action `name` with its inputs; an unknown action is not permitted, an input of the wrong form is
    /// invalid form data.
    fn parse(name: &str, input_data: &'a Map<String, Value>) -> Result<Self, FlowError> {
        let text = |input: &str| input_data.get(input).and_then(Value::as_str);
        let id = |input: &str| text(input).and_then(|id| Uuid::parse_str(id).ok()).ok_or(FlowError::FormDataInvalid);
        Ok(match name {
            "register_client_capabilities" => Self::RegisterClientCapabilities,
            "back" => Self::Back,
            "thirdparty_oauth" | "connect_thirdparty_oauth_provider" => Self::ThirdpartyOauth(OauthInputs {
                provider: text("provider").ok_or(FlowError::FormDataInvalid)?,
                redirect_to: text("redirect_to"),
                code_verifier: text("code_verifier"),
            }),
            "exchange_token" => Self::ExchangeToken {
                token: text("token").ok_or(FlowError::FormDataInvalid)?,
                code_verifier: text("code_verifier"),
            },
            "session_delete" => Self::SessionDelete { session_id: id("session_id")?.into() },
            "email_delete" => Self::EmailDelete { email_id: id("email_id")?.into() },
            "account_delete" => Self::AccountDelete,
            _ => return Err(FlowError::OperationNotPermitted),
        })
    }

    /// Whether its effects reach past the flow's own row.
    fn acts_beyond_the_flow(&self) -> bool {
        matches!(
            self,
            Self::ExchangeToken { .. } | Self::SessionDelete { .. } | Self::EmailDelete { .. } | Self::AccountDelete
        )
    }
}

/// Everything an action runs against.
struct Context<'a> {
    state: &'a AppState,
    request: &'a FlowRequest,
    flow_id: FlowId,
    data: &'a FlowData,
    session: Option<&'a Authenticated>,
    profile: Option<&'a Profile>,
}

async fn execute(context: &Context<'_>, action: Action<'_>) -> Result<Step, FlowError> {
    let Context { state, request, flow_id, data, session, profile } = *context;
    let at = |next_state: StateName| FlowData { state: next_state, redirect_url: None, ..data.clone() };
    match action {
        Action::RegisterClientCapabilities | Action::Back => Ok(Step::to(at(data.init_state()))),
        Action::ThirdpartyOauth(inputs) => {
            let started = state
                .start_sign_in(StartRequest {
                    provider: inputs.provider,
                    redirect_to: inputs.redirect_to,
                    client_verifier: inputs.code_verifier.map(str::to_owned),
                    flow_id: Some(flow_id),
                    connect_user_id: session.map(|s| s.claims.sub).filter(|_| data.name == FlowName::Profile),
                })
                .map_err(|error| match error {
                    StartError::RedirectNotAllowed(_) => FlowError::InputInvalid(InvalidInput {
                        input: "redirect_to",
                        cause: "this page is not in the server's third_party.allowed_redirect_urls",
                    }),
                    StartError::Provider(_) | StartError::NoRedirect | StartError::BadVerifier => {
                        FlowError::FormDataInvalid
                    }
                })?;
            let mut step = Step::to(FlowData {
                state: StateName::Thirdparty,
                redirect_url: Some(started.authorize_url.to_string()),
                ..data.clone()
            });
            if let Some(binding) = started.browser_binding {
                step.headers = cookies::state_binding(&state.config().session, &binding);
            }
            Ok(step)
        }
        Action::ExchangeToken { token, code_verifier } => exchange_token(context, token, code_verifier).await,
        Action::SessionDelete { session_id } => {
            let user = session.ok_or(FlowError::Unauthorized)?.user_id();
            if !state.sessions().end_for_user(user, session_id).await.map_err(|_| FlowError::Technical)? {
                return Err(FlowError::FormDataInvalid);
            }
            Ok(Step::to(at(StateName::ProfileInit)))
        }
        Action::EmailDelete { email_id } => {
            let user = profile.ok_or(FlowError::Unauthorized)?.user.id;
            let removal = state.users().remove_email(user, email_id).await.map_err(|_| FlowError::Technical)?;
            if removal != EmailRemoval::Removed {
                return Err(FlowError::FormDataInvalid);
            }
            Ok(Step::to(at(StateName::ProfileInit)))
        }
        Action::AccountDelete => {
            let user = profile.ok_or(FlowError::Unauthorized)?.user.id;
            state.users().delete(user, Some(&request.meta)).await.map_err(|_| FlowError::Technical)?;
            let mut step = Step::to(at(StateName::AccountDeleted));
            step.headers = cookies::session_removal(&state.config().session);
            Ok(step)
        }
    }
}

async fn exchange_token(context: &Context<'_>, value: &str, code_verifier: Option<&str>) -> Result<Step, FlowError> {
    let Context { state, request, data, session, .. } = *context;
    let exchange = state.token_exchange();
    if data.name == FlowName::Profile {
        let user = session.ok_or(FlowError::Unauthorized)?.user_id();
        exchange.for_connection(value, code_verifier, user, &request.meta).await.map_err(exchange_refused)?;
        return Ok(Step::to(FlowData { state: StateName::ProfileInit, redirect_url: None, ..data.clone() }));
    }
    let Exchanged { user, issued, provider } =
        exchange.for_session(value, code_verifier, &request.meta).await.map_err(exchange_refused)?;
    let payload = FlowPayload {
        claims: Some(ClaimsView::from(&issued.claims)),
        user: Some(UserView::from(&user)),
        last_login: (data.name == FlowName::Login)
            .then_some(LastLogin { login_method: "third_party", third_party_provider: provider }),
        ..FlowPayload::default()
    };
    Ok(Step {
        next: FlowData { state: StateName::Success, redirect_url: None, ..data.clone() },
        payload: Some(payload),
        headers: cookies::session_delivery(&state.config().session, &issued),
        error: None,
    })
}

/// The flow's error for a refused token: what `POST /token` answers with a status, as the flow's error states.
fn exchange_refused(refused: Refused) -> FlowError {
    match refused.error {
        ExchangeError::NotFound | ExchangeError::Expired | ExchangeError::VerifierMismatch => {
            FlowError::FormDataInvalid
        }
        ExchangeError::OtherUser => FlowError::OperationNotPermitted,
        ExchangeError::RateLimited(_) => FlowError::RateLimitExceeded,
        ExchangeError::Store(_) | ExchangeError::Session(_) => FlowError::Technical,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn inputs(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn actions_parse_with_their_inputs() {
        let id = SessionId::generate();
        let data = inputs(json!({"session_id": id.to_string()}));
        assert_eq!(Action::parse("session_delete", &data), Ok(Action::SessionDelete { session_id: id }));
        let data = inputs(json!({"session_id": "not-a-uuid"}));
        assert_eq!(Action::parse("session_delete", &data), Err(FlowError::FormDataInvalid));
        let data = inputs(json!({"provider": "microsoft", "redirect_to": "https://app/"}));
        let oauth = OauthInputs { provider: "microsoft", redirect_to: Some("https://app/"), code_verifier: None };
        assert_eq!(Action::parse("connect_thirdparty_oauth_provider", &data), Ok(Action::ThirdpartyOauth(oauth)));
        assert_eq!(Action::parse("exchange_token", &inputs(json!({}))), Err(FlowError::FormDataInvalid));
        assert_eq!(Action::parse("password_login", &inputs(json!({}))), Err(FlowError::OperationNotPermitted));
    }

    #[test]
    fn only_actions_with_effects_outside_the_flow_claim_the_step_first() {
        let beyond = [
            Action::ExchangeToken { token: "t", code_verifier: None },
            Action::SessionDelete { session_id: SessionId::generate() },
            Action::EmailDelete { email_id: EmailId::generate() },
            Action::AccountDelete,
        ];
        assert!(beyond.iter().all(Action::acts_beyond_the_flow));
        let oauth = OauthInputs { provider: "microsoft", redirect_to: None, code_verifier: None };
        let within = [Action::RegisterClientCapabilities, Action::Back, Action::ThirdpartyOauth(oauth)];
        assert!(!within.iter().any(Action::acts_beyond_the_flow));
    }
}
