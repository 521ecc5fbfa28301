//! Hanko's flow API over HTTP, as `<hanko-auth>` and `<hanko-profile>` drive it, against the fake Entra ID.

use gatehouse_core::clock::Clock;
use gatehouse_testkit::{Backend, both_backends, fake_entra::FakeUser};
use reqwest::Response;
use serde_json::{Value, json};
use url::Url;

use crate::thirdparty::{APP, Browser, Setup, error_of, query};

/// A flow client: remembers the last state, runs actions by their `href` with the state's CSRF token.
struct Flow<'a> {
    setup: &'a Setup,
    state: Value,
    bearer: Option<String>,
}

impl<'a> Flow<'a> {
    async fn start(setup: &'a Setup, name: &str, bearer: Option<String>) -> Flow<'a> {
        let mut flow = Flow { setup, state: Value::Null, bearer };
        let response = flow.post(&format!("/{name}"), None).await;
        flow.state = response.json().await.unwrap();
        flow
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Response {
        let server = &self.setup.server;
        let mut request = server.client.post(server.url(path)).header("content-type", "application/json");
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Runs `action` of the current state; keeps the new state and returns the status and headers.
    async fn run(&mut self, action: &str, inputs: Value) -> Answer {
        let href = self.state["actions"][action]["href"]
            .as_str()
            .unwrap_or_else(|| panic!("{action} offered: {}", self.state))
            .to_owned();
        let body = json!({ "input_data": inputs, "csrf_token": self.state["csrf_token"] });
        let response = self.post(&href, Some(body)).await;
        let headers = response.headers().clone();
        let status = response.status();
        self.state = response.json().await.unwrap();
        assert_eq!(self.state["status"], status.as_u16(), "status mirrors the HTTP status");
        assert!(self.state["actions"].is_object(), "actions is always an object: {}", self.state);
        Answer { status, headers }
    }

    /// Runs an OAuth action (`thirdparty_oauth`, `connect_thirdparty_oauth_provider`) with the test verifier;
    /// returns the provider URL of the `thirdparty` state it leads to.
    async fn start_at_provider(&mut self, action: &str, redirect_to: &str) -> Url {
        self.run(action, json!({"provider": "microsoft", "redirect_to": redirect_to, "code_verifier": VERIFIER})).await;
        assert_eq!(self.name(), "thirdparty", "{}", self.state);
        Url::parse(self.state["payload"]["redirect_url"].as_str().unwrap()).unwrap()
    }

    fn name(&self) -> &str {
        self.state["name"].as_str().unwrap()
    }
}

/// What an action answered besides the state.
struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn status(&self) -> reqwest::StatusCode {
        self.status
    }

    fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }
}

fn capabilities() -> Value {
    json!({"webauthn_available": true, "webauthn_conditional_mediation_available": true, "webauthn_platform_authenticator_available": false})
}

const VERIFIER: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~";

/// `/login` up to `success`: returns the flow and the response headers of `exchange_token`.
async fn sign_in<'a>(setup: &'a Setup, browser: &mut Browser<'_>) -> (Flow<'a>, Answer) {
    let mut flow = Flow::start(setup, "login", None).await;
    assert_eq!(flow.name(), "preflight");
    flow.run("register_client_capabilities", capabilities()).await;
    assert_eq!(flow.name(), "login_init");
    assert_eq!(flow.state["payload"], json!({}));
    let provider = &flow.state["actions"]["thirdparty_oauth"]["inputs"]["provider"];
    assert_eq!(provider["allowed_values"], json!([{"value": "microsoft", "name": "Microsoft"}]));
    let authorize = flow.start_at_provider("thirdparty_oauth", &format!("{APP}/login?x=1")).await;
    assert_eq!(flow.name(), "thirdparty");
    assert!(flow.state["actions"]["exchange_token"].is_object() && flow.state["actions"]["back"].is_object());
    let callback = browser.at_provider(&authorize).await;
    let landing = browser.callback(&callback).await;
    let token = query(&landing, "hanko_token").unwrap_or_else(|| panic!("{landing}"));
    let response = flow.run("exchange_token", json!({"token": token, "code_verifier": VERIFIER})).await;
    (flow, response)
}

async fn login_reaches_success_with_a_session(backend: Backend) {
    let setup = Setup::start(backend, |config| config.session.enable_auth_token_header = true).await;
    let mut browser = setup.browser();
    let (flow, response) = sign_in(&setup, &mut browser).await;
    assert_eq!(flow.name(), "success", "{}", flow.state);
    let payload = &flow.state["payload"];
    assert!(payload["claims"]["expiration"].as_str().unwrap().ends_with('Z'));
    assert_eq!(payload["user"]["emails"][0]["address"], "megan@contoso.com");
    assert_eq!(payload["last_login"], json!({"login_method": "third_party", "third_party_provider": "microsoft"}));
    assert_eq!(response.headers()["x-session-lifetime"], "43200");
    assert_eq!(response.headers()["x-session-retention"], "persistent");
    let jwt = response.headers()["x-auth-token"].to_str().unwrap();
    let validated = setup.server.get_json("/sessions/validate", Some(jwt)).await;
    assert_eq!(validated["is_valid"], true);
    assert_eq!(validated["claims"]["amr"], json!(["ext:microsoft"]));
}

/// A login flow in the `thirdparty` state, and the one-time token its browser brought back from the provider.
async fn at_exchange_token(setup: &Setup) -> (Flow<'_>, String) {
    let mut browser = setup.browser();
    let mut flow = Flow::start(setup, "login", None).await;
    flow.run("register_client_capabilities", capabilities()).await;
    let authorize = flow.start_at_provider("thirdparty_oauth", &format!("{APP}/")).await;
    let landing = browser.callback(&browser.at_provider(&authorize).await).await;
    (flow, query(&landing, "hanko_token").unwrap())
}

async fn the_verifier_must_match_and_tokens_work_once(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let (mut flow, token) = at_exchange_token(&setup).await;
    flow.run("exchange_token", json!({"token": token, "code_verifier": "x".repeat(64)})).await;
    assert_eq!(flow.name(), "thirdparty", "a client error keeps the state");
    assert_eq!(flow.state["error"]["code"], "form_data_invalid_error");
    assert_eq!(flow.state["status"], 400);
    flow.run("exchange_token", json!({"token": token, "code_verifier": VERIFIER})).await;
    assert_eq!(flow.state["error"]["code"], "form_data_invalid_error", "the token is gone after one try");
    assert_eq!(flow.name(), "thirdparty", "a spent token is the client's error: the flow goes on");
    flow.run("exchange_token", json!({"token": "made-up", "code_verifier": VERIFIER})).await;
    assert_eq!((flow.state["status"].as_u64(), flow.name()), (Some(400), "thirdparty"));
}

async fn junk_tokens_never_lock_out_a_valid_one(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let (mut flow, token) = at_exchange_token(&setup).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        flow.run("exchange_token", json!({"token": "made-up", "code_verifier": VERIFIER})).await;
        codes.push(flow.state["error"]["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        codes,
        ["form_data_invalid_error", "form_data_invalid_error", "form_data_invalid_error", "rate_limit_exceeded"]
    );
    assert_eq!((flow.state["status"].as_u64(), flow.name()), (Some(429), "thirdparty"));
    flow.run("exchange_token", json!({"token": token, "code_verifier": VERIFIER})).await;
    assert_eq!(flow.name(), "success", "the valid token still works: {}", flow.state);
}

/// Sixteen `exchange_token` calls at once on one flow: exactly one succeeds and delivers its session, the others
/// are refused with a 4xx before they touch anything, and no session is made that nobody received.
async fn concurrent_actions_on_one_flow_act_once(backend: Backend) {
    let setup = Setup::start(backend, |config| config.session.enable_auth_token_header = true).await;
    let (flow, token) = at_exchange_token(&setup).await;
    let server = &setup.server;
    let url = server.url(flow.state["actions"]["exchange_token"]["href"].as_str().unwrap());
    let body =
        json!({"input_data": {"token": token, "code_verifier": VERIFIER}, "csrf_token": flow.state["csrf_token"]});
    let calls = (0..16).map(|_| {
        let request = server.client.post(&url).json(&body);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let jwt = response.headers().get("x-auth-token").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), jwt)
        })
    });
    let mut answers = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        answers.push(call.await.unwrap());
    }
    let successes: Vec<_> = answers.iter().filter(|(status, _)| *status == 200).collect();
    assert_eq!(successes.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|(status, _)| *status == 200 || (400..500).contains(status)), "{answers:?}");
    let jwt = successes[0].1.as_deref().expect("the winner delivers its session");
    let validated = server.get_json("/sessions/validate", Some(jwt)).await;
    assert_eq!(validated["is_valid"], true);
    let user_id: uuid::Uuid = validated["user_id"].as_str().unwrap().parse().unwrap();
    let sessions = server.store.list_sessions(user_id.into(), server.clock.now()).await.unwrap();
    assert_eq!(sessions.len(), 1, "no session was made that nobody received");
}

async fn actions_are_guarded(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let mut flow = Flow::start(&setup, "login", None).await;
    let href = flow.state["actions"]["register_client_capabilities"]["href"].as_str().unwrap().to_owned();
    assert!(href.starts_with("/login?action=register_client_capabilities%40"), "{href}");
    let stale = json!({"input_data": capabilities(), "csrf_token": "wrong"});
    let response = flow.post(&href, Some(stale)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "operation_not_permitted_error");

    let flow_id = href.rsplit("%40").next().unwrap().to_owned();
    let not_offered = json!({"input_data": {"token": "x"}, "csrf_token": flow.state["csrf_token"]});
    let response = flow.post(&format!("/login?action=exchange_token@{flow_id}"), Some(not_offered)).await;
    assert_eq!(response.status(), 403, "an action the state does not offer");

    let missing = flow.run("register_client_capabilities", json!({})).await;
    assert_eq!(missing.status(), 400, "a required input is missing");
    assert_eq!(flow.state["error"]["code"], "form_data_invalid_error");
    assert_eq!(flow.name(), "preflight");
    flow.run("register_client_capabilities", capabilities()).await;
    let bad = flow
        .run("thirdparty_oauth", json!({"provider": "microsoft", "redirect_to": "https://evil.example.com/"}))
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(flow.name(), "login_init");
    let unknown = flow.run("thirdparty_oauth", json!({"provider": "google", "redirect_to": format!("{APP}/")})).await;
    assert_eq!(unknown.status(), 400, "a provider outside allowed_values");
    flow.run("thirdparty_oauth", json!({"provider": "microsoft", "redirect_to": format!("{APP}/")})).await;
    flow.run("back", json!({})).await;
    assert_eq!(flow.name(), "login_init", "back returns to the start");

    let unknown_flow = json!({"input_data": {}, "csrf_token": "x"});
    let response = flow.post(&format!("/login?action=back@{}", uuid::Uuid::new_v4()), Some(unknown_flow)).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["name"].as_str(), body["actions"].is_object()), (Some("error"), true));
    let repeated = flow.post(&format!("/login?action=back@{}&action=back", uuid::Uuid::new_v4()), None).await;
    assert_eq!(repeated.status(), 403, "the first `action` counts, as in Hanko");
    let body: Value = repeated.json().await.unwrap();
    assert_eq!(body["name"], "error", "a repeated parameter is answered with a flow state too, not a plain error");

    let store = &setup.server.store;
    let expired_id = uuid::Uuid::new_v4();
    store
        .insert_flow(&gatehouse_store::FlowRecord {
            id: expired_id.into(),
            data: json!({"name": "login", "state": "login_init"}).to_string(),
            version: 0,
            csrf_token: "c".repeat(32),
            expires_at: setup.server.clock.now() - std::time::Duration::from_millis(1),
            created_at: setup.server.clock.now() - std::time::Duration::from_millis(1000),
        })
        .await
        .unwrap();
    let response = flow
        .post(
            &format!("/login?action=back%40{expired_id}"),
            Some(json!({"input_data": {}, "csrf_token": "c".repeat(32)})),
        )
        .await;
    assert_eq!(response.status(), 410);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "flow_expired_error");
}

/// A page outside `third_party.allowed_redirect_urls`: the error sits on the `redirect_to` input, where Hanko's
/// elements look for the text to show, and the server names the setting once per page, without the query.
async fn a_refused_page_is_named_on_its_input_and_in_the_log(backend: Backend) {
    crate::logs::captured();
    let setup = Setup::start(backend, |_| {}).await;
    let mut flow = Flow::start(&setup, "login", None).await;
    flow.run("register_client_capabilities", capabilities()).await;
    let page = format!("https://app-{}.example.net/sign-in", uuid::Uuid::new_v4());
    for query in ["?code=SECRET-QUERY", "?again=1"] {
        let inputs =
            json!({"provider": "microsoft", "redirect_to": format!("{page}{query}"), "code_verifier": VERIFIER});
        let refused = flow.run("thirdparty_oauth", inputs).await;
        assert_eq!(refused.status(), 400);
        assert_eq!(flow.name(), "login_init");
        assert_eq!(flow.state["error"], json!({"code": "form_data_invalid_error", "message": "Form data invalid."}));
        let inputs = &flow.state["actions"]["thirdparty_oauth"]["inputs"];
        let error = &inputs["redirect_to"]["error"];
        assert_eq!(error["code"], "value_invalid_error", "{}", flow.state);
        assert!(error["cause"].as_str().unwrap().contains("third_party.allowed_redirect_urls"), "{error}");
        assert!(inputs["provider"].get("error").is_none(), "only the refused input: {inputs}");
    }
    flow.start_at_provider("thirdparty_oauth", &format!("{APP}/")).await;
    assert!(flow.state["actions"]["exchange_token"]["inputs"]["token"].get("error").is_none());

    let log = crate::logs::text();
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains("WARN") && line.contains(&page)).collect();
    assert_eq!(warnings.len(), 1, "one warning per page: {warnings:?}");
    assert!(warnings[0].contains("third_party.allowed_redirect_urls"), "it names the setting: {}", warnings[0]);
    assert!(!log.contains("SECRET-QUERY"), "the query of a refused page never reaches the log");
}

async fn provider_errors_come_back_to_the_flow(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    setup.entra.fail_next_authorize("access_denied", "The user declined.");
    let browser = setup.browser();
    let mut flow = Flow::start(&setup, "registration", None).await;
    flow.run("register_client_capabilities", capabilities()).await;
    assert_eq!(flow.name(), "registration_init");
    let authorize = flow.start_at_provider("thirdparty_oauth", &format!("{APP}/")).await;
    let callback = browser.at_provider(&authorize).await;
    let mut browser = setup.browser();
    let landing = browser.callback(&callback).await;
    assert_eq!(error_of(&landing).0, "access_denied");
    flow.run("back", json!({})).await;
    assert_eq!(flow.name(), "registration_init", "the element runs back and shows the error");
}

async fn no_provider_no_thirdparty_action(backend: Backend) {
    let setup = Setup::start(backend, |config| config.third_party.providers.microsoft.enabled = false).await;
    let mut flow = Flow::start(&setup, "login", None).await;
    flow.run("register_client_capabilities", capabilities()).await;
    assert_eq!(flow.name(), "login_init");
    assert_eq!(flow.state["actions"], json!({}));
}

async fn the_profile_lists_and_revokes(backend: Backend) {
    let setup = Setup::start(backend, |config| config.account.allow_deletion = true).await;
    let anonymous = Flow::start(&setup, "profile", None).await;
    assert_eq!(anonymous.state["name"], "error");
    assert_eq!(anonymous.state["status"], 401);
    assert_eq!(anonymous.state["error"]["code"], "unauthorized");
    assert_eq!(anonymous.state["csrf_token"], "");

    let server = &setup.server;
    let user = server.create_user("megan@contoso.com").await;
    let other = server.issue_session(user).await;
    let current = server.issue_session(user).await;
    let mut profile = Flow::start(&setup, "profile", Some(current.clone())).await;
    assert_eq!(profile.name(), "preflight");
    profile.run("register_client_capabilities", capabilities()).await;
    assert_eq!(profile.name(), "profile_init");
    let payload = profile.state["payload"].clone();
    assert_eq!(payload["user"]["emails"][0]["address"], "megan@contoso.com");
    let sessions = payload["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let actions = &profile.state["actions"];
    assert!(actions["email_delete"]["inputs"]["email_id"]["allowed_values"].is_array(), "needed by the element");
    assert!(actions["connect_thirdparty_oauth_provider"].is_object());
    assert!(actions["account_delete"].is_object());
    let revocable = actions["session_delete"]["inputs"]["session_id"]["allowed_values"].as_array().unwrap().clone();
    assert_eq!(revocable.len(), 1, "the current session is not offered for revocation");
    profile.run("session_delete", json!({"session_id": revocable[0]["value"]})).await;
    assert_eq!(profile.name(), "profile_init");
    assert_eq!(server.get_json("/sessions/validate", Some(&other)).await["is_valid"], false);
    assert_eq!(server.get_json("/sessions/validate", Some(&current)).await["is_valid"], true);
    let foreign = profile.run("session_delete", json!({"session_id": uuid::Uuid::new_v4()})).await;
    assert_eq!(foreign.status(), 400, "only the user's own other sessions");
    let someone_else = server.create_user("someone@contoso.com").await;
    let their_token = server.issue_session(someone_else).await;
    let their_session = server.get_json("/sessions/validate", Some(&their_token)).await["claims"]["session_id"].clone();
    let refused = profile.run("session_delete", json!({"session_id": their_session})).await;
    assert_eq!(refused.status(), 400, "another user's real session id is refused");
    assert_eq!(server.get_json("/sessions/validate", Some(&their_token)).await["is_valid"], true);

    profile.run("account_delete", json!({})).await;
    assert_eq!(profile.name(), "account_deleted");
    assert_eq!(server.get_json("/sessions/validate", Some(&current)).await["is_valid"], false);
}

async fn the_profile_connects_microsoft(backend: Backend) {
    let setup = Setup::start(backend, |config| config.third_party.providers.microsoft.allow_linking = true).await;
    let server = &setup.server;
    let user = server.create_user("megan@contoso.com").await;
    let session = server.issue_session(user).await;
    let mut profile = Flow::start(&setup, "profile", Some(session.clone())).await;
    profile.run("register_client_capabilities", capabilities()).await;
    let provider = &profile.state["actions"]["connect_thirdparty_oauth_provider"]["inputs"]["provider"];
    assert_eq!(provider["allowed_values"], json!([{"value": "microsoft", "name": "Microsoft"}]));
    setup.entra.queue_user(FakeUser::new("megan@contoso.com").with_upn("megan@contoso.com"));
    let authorize = profile.start_at_provider("connect_thirdparty_oauth_provider", &format!("{APP}/profile")).await;
    assert_eq!(profile.name(), "thirdparty");
    let browser = setup.browser();
    let callback = browser.at_provider(&authorize).await;
    let landing = setup.browser().callback(&callback).await;
    let token = query(&landing, "hanko_token").unwrap_or_else(|| panic!("{landing}"));
    profile.run("exchange_token", json!({"token": token, "code_verifier": VERIFIER})).await;
    assert_eq!(profile.name(), "profile_init", "{}", profile.state);
    let identities = &profile.state["payload"]["user"]["identities"];
    assert_eq!(identities[0]["provider"], "Microsoft", "{identities}");
    assert!(profile.state["actions"].get("connect_thirdparty_oauth_provider").is_none(), "already connected");

    let closed = Setup::start(backend, |_| {}).await;
    let user = closed.server.create_user("megan@contoso.com").await;
    let session = closed.server.issue_session(user).await;
    let mut profile = Flow::start(&closed, "profile", Some(session)).await;
    profile.run("register_client_capabilities", capabilities()).await;
    closed.entra.queue_user(FakeUser::new("megan@contoso.com").with_upn("megan@contoso.com"));
    let authorize = profile.start_at_provider("connect_thirdparty_oauth_provider", &format!("{APP}/")).await;
    let browser = closed.browser();
    let callback = browser.at_provider(&authorize).await;
    let mut browser = closed.browser();
    let landing = browser.callback(&callback).await;
    assert_eq!(error_of(&landing).0, "user_conflict", "connecting also needs allow_linking");
}

async fn a_flow_moves_between_instances(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let second = gatehouse_testkit::TestServer::start_with(setup.server.state.config().clone()).await;
    let mut flow = Flow::start(&setup, "login", None).await;
    flow.run("register_client_capabilities", capabilities()).await;
    let authorize = flow.start_at_provider("thirdparty_oauth", &format!("{APP}/")).await;
    let browser = setup.browser();
    let callback = browser.at_provider(&authorize).await;
    let mut url = Url::parse(&second.url("/thirdparty/callback")).unwrap();
    url.set_query(callback.query());
    let landing = second.client.get(url).send().await.unwrap();
    let landing = Url::parse(landing.headers()["location"].to_str().unwrap()).unwrap();
    let token = query(&landing, "hanko_token").expect("the callback on instance B completes the sign-in");
    flow.run("exchange_token", json!({"token": token, "code_verifier": VERIFIER})).await;
    assert_eq!(flow.name(), "success", "and instance A finishes it");
}

both_backends!(
    concurrent_actions_on_one_flow_act_once,
    login_reaches_success_with_a_session,
    the_verifier_must_match_and_tokens_work_once,
    junk_tokens_never_lock_out_a_valid_one,
    actions_are_guarded,
    a_refused_page_is_named_on_its_input_and_in_the_log,
    provider_errors_come_back_to_the_flow,
    no_provider_no_thirdparty_action,
    the_profile_lists_and_revokes,
    the_profile_connects_microsoft,
    a_flow_moves_between_instances,
);

#[tokio::test]
async fn a_user_signed_in_twice_is_one_user() {
    let setup = Setup::start(Backend::Sqlite, |_| {}).await;
    setup.entra.set_default_user(FakeUser::new("megan@contoso.com"));
    let mut browser = setup.browser();
    let (first, _) = sign_in(&setup, &mut browser).await;
    let (second, _) = sign_in(&setup, &mut browser).await;
    assert_eq!(first.state["payload"]["user"]["id"], second.state["payload"]["user"]["id"]);
}
