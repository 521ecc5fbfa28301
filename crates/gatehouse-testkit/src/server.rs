use std::sync::Arc;

use gatehouse_api::{AppState, Application};
use gatehouse_app::{RequestMeta, tasks::TaskIntervals};
use gatehouse_core::{
    clock::{Clock, ManualClock, SystemClock, Timestamp},
    config::{Config, DatabaseUrl, Secret},
    email::{Email, EmailProof},
    ids::{EmailId, UserId},
};
use gatehouse_store::{NewEmail, NewUser, Store};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{Backend, TestDb};

pub const TEST_SECRET_KEY: &str = "test-secret-key-0123456789";
/// The admin API key every test server accepts (from `server.admin.api_keys`).
pub const TEST_ADMIN_KEY: &str = "test-admin-key-0123456789abcdefghijklmnop";

/// A valid configuration for tests on `db`: a fixed secret key and admin key, port 0 for both listeners, cookies
/// without `Secure` (plain http), and saved settings polled every 100 ms.
pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config { secret_keys: vec![Secret::new(TEST_SECRET_KEY)], ..Config::default() };
    config.database.url = DatabaseUrl::new(db.url());
    config.server.public.address = "127.0.0.1:0".into();
    config.server.admin.address = "127.0.0.1:0".into();
    config.server.admin.api_keys = vec![Secret::new(TEST_ADMIN_KEY)];
    config.server.settings_poll_interval = gatehouse_core::duration::GoDuration::from_millis(100);
    config.session.cookie.secure = false;
    config
}

/// Where a test server's clock starts: half a second into the minute after the wall clock's, so windows of whole
/// minutes (or seconds) never end in the middle of a test, and a window's reset is a whole number of seconds plus
/// 0.5. It stays within a minute of the wall clock, so the fake Entra ID's tokens (stamped with the wall clock)
/// are fresh for it.
pub fn test_clock_start() -> Timestamp {
    Timestamp::from_millis((SystemClock.now().as_millis().div_euclid(60_000) + 1) * 60_000 + 500)
}

/// How often a test server's background tasks run: settings as configured, keys every 100 ms, and sweeps and
/// expiry warnings once at start (a test that checks them asks for them more often), so that a sweep never
/// races a test that looks at an expired row.
pub fn test_task_intervals(config: &Config) -> TaskIntervals {
    let hour = std::time::Duration::from_secs(3600);
    TaskIntervals {
        sweep: hour,
        settings_poll: config.server.settings_poll_interval.as_duration(),
        key_reload: std::time::Duration::from_millis(100),
        expiry_warning: hour,
    }
}

/// A Gatehouse server on its own port and database, stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    pub base_url: String,
    /// The server's clock: it stands at [`Self::clock_start`] until a test moves it.
    pub clock: Arc<ManualClock>,
    pub clock_start: Timestamp,
    /// The admin listener, when the admin API is on.
    pub admin_url: Option<String>,
    pub state: AppState,
    /// The server's database, for fixtures and for checking what was stored.
    pub store: Store,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    db: Option<TestDb>,
}

impl TestServer {
    /// Starts on a fresh database of `backend`, with `configure` applied to the test configuration.
    pub async fn start(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(backend).await;
        let mut config = test_config(&db);
        configure(&mut config);
        let mut server = Self::start_with(config).await;
        server.db = Some(db);
        server
    }

    /// Starts with `config` on the database it names (a second instance, or a restart); the caller keeps that
    /// database alive.
    pub async fn start_with(config: Config) -> Self {
        let intervals = test_task_intervals(&config);
        Self::start_with_tasks(config, intervals).await
    }

    /// [`Self::start_with`], with the background tasks running at `intervals`.
    pub async fn start_with_tasks(config: Config, intervals: TaskIntervals) -> Self {
        let issues = config.validate();
        assert!(issues.is_empty(), "test configuration is invalid: {issues:?}");
        let store = Store::connect(config.database.url.expose(), 5).await.expect("connect");
        store.migrate().await.expect("migrate");
        let clock_start = test_clock_start();
        let clock = Arc::new(ManualClock::new(clock_start));
        let app = Application::build_with(Arc::new(config), store.clone(), clock.clone(), intervals)
            .await
            .expect("start Gatehouse");
        let base_url = format!("http://{}", app.local_addr());
        let admin_url = app.admin_addr().map(|address| format!("http://{address}"));
        let state = app.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await;
        });
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self {
            base_url,
            admin_url,
            clock,
            clock_start,
            state,
            store,
            client,
            shutdown: Some(shutdown),
            task: Some(task),
            db: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request to the admin API, authenticated with [`TEST_ADMIN_KEY`].
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let base = self.admin_url.as_deref().expect("the admin API is on");
        self.client.request(method, format!("{base}{path}")).bearer_auth(TEST_ADMIN_KEY)
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) -> Option<TestDb> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.store.close().await;
        self.db.take()
    }

    /// `GET path` with an optional bearer token, as JSON.
    pub async fn get_json(&self, path: &str, bearer: Option<&str>) -> serde_json::Value {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request").json().await.expect("a JSON answer")
    }

    /// `GET /me` for the session `token`.
    pub async fn me(&self, token: &str) -> serde_json::Value {
        self.get_json("/me", Some(token)).await
    }

    /// Creates a user with a primary email proven by a UPN; returns the user id.
    pub async fn create_user(&self, email: &str) -> UserId {
        let id = UserId::generate();
        let user = NewUser {
            id,
            name: Some("Test User".into()),
            given_name: None,
            family_name: None,
            picture: None,
            email: Some(NewEmail {
                id: EmailId::generate(),
                address: Email::parse(email).expect("valid email"),
                proof: Some(EmailProof::Upn),
            }),
            created_at: self.clock.now(),
        };
        self.store.create_user(&user).await.expect("create user");
        id
    }

    /// Issues a session for `user_id` the way a sign-in does; returns the JWT.
    pub async fn issue_session(&self, user_id: UserId) -> String {
        let sessions = self.state.sessions();
        let (_, issued) = sessions
            .issue_for_user(user_id, vec!["ext:microsoft".into()], None, &RequestMeta::default(), None)
            .await
            .expect("issue session");
        issued.token
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
