//! Database outages, injected by a TCP proxy between Gatehouse and PostgreSQL: readiness answers false quickly,
//! requests that need the database answer a Hanko-shaped 503 instead of hanging or calling a good session invalid,
//! and service comes back by itself, without a request lost to a connection the outage left dead in the pool.
//!
//! Each test prints a `FIGURE` line with what it measured; `scripts/faults` collects them for `RELIABILITY.md`.

use std::time::{Duration, Instant};

use gatehouse_core::{clock::Timestamp, config::DatabaseUrl};
use gatehouse_testkit::{Backend, FaultProxy, TestDb, TestServer, test_config};
use reqwest::StatusCode;
use serde_json::json;

/// The longest a request may take to answer 503 during an outage: the store's 3 s wait for a connection, plus
/// room for a loaded test machine.
const OUTAGE_ANSWER: Duration = Duration::from_secs(5);

/// The longest `/health/ready` may take to answer at all.
const READY_ANSWER: Duration = Duration::from_secs(1);

/// A server whose every database connection goes through a fault proxy. Fields drop in order: the server stops
/// before its proxy and database go.
struct BehindProxy {
    server: TestServer,
    proxy: FaultProxy,
    _db: TestDb,
}

async fn behind_proxy() -> BehindProxy {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = FaultProxy::start_for(db.url()).await;
    let mut config = test_config(&db);
    config.database.url = DatabaseUrl::new(proxy.route(db.url()));
    let server = TestServer::start_with(config).await;
    BehindProxy { server, proxy, _db: db }
}

/// A signed-in user's session token.
async fn session(server: &TestServer) -> String {
    let user = server.create_user(&format!("{}@example.com", uuid::Uuid::new_v4().simple())).await;
    server.issue_session(user).await
}

/// `POST /sessions/validate` (which also writes: it marks the session used); the status, the body and how long
/// the answer took.
async fn validate(server: &TestServer, token: &str) -> (StatusCode, serde_json::Value, Duration) {
    post_validate(server.client.clone(), server.url("/sessions/validate"), token.to_owned()).await
}

async fn post_validate(
    client: reqwest::Client,
    url: String,
    token: String,
) -> (StatusCode, serde_json::Value, Duration) {
    let started = Instant::now();
    let response = client.post(url).json(&json!({ "session_token": token })).send().await.expect("an answer");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"), started.elapsed())
}

/// `count` validations of `token`, ten at a time, as ten apps would send them; their answers.
async fn validations(server: &TestServer, token: &str, count: usize) -> Vec<(StatusCode, serde_json::Value, Duration)> {
    let mut answers = Vec::with_capacity(count);
    while answers.len() < count {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..10.min(count - answers.len()) {
            batch.spawn(post_validate(server.client.clone(), server.url("/sessions/validate"), token.to_owned()));
        }
        answers.extend(batch.join_all().await);
    }
    answers
}

async fn ready(server: &TestServer) -> (StatusCode, Duration) {
    let started = Instant::now();
    let response = server.client.get(server.url("/health/ready")).send().await.expect("an answer");
    (response.status(), started.elapsed())
}

/// Asserts the answer is Hanko's 503 for a database outage, in time.
fn assert_unavailable((status, body, took): &(StatusCode, serde_json::Value, Duration)) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, &json!({ "code": 503, "message": "database unavailable" }));
    assert!(*took < OUTAGE_ANSWER, "answered after {took:?}");
}

/// Waits (polling every 50 ms, up to 10 s) until `/health/ready` answers 200; returns how long that took.
async fn until_ready(server: &TestServer) -> Duration {
    let started = Instant::now();
    while ready(server).await.0 != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(10), "still not ready after the database came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// An outage made by `fault`: readiness fails within a second, validations (GET and POST alike) answer Hanko's
/// 503 in bounded time instead of calling the session invalid, and service resumes by itself once the proxy is
/// restored, from the first request on. Prints the figures under `name`.
async fn outage(name: &str, fault: fn(&FaultProxy)) {
    let BehindProxy { server, proxy, _db } = behind_proxy().await;
    let token = session(&server).await;
    assert_eq!(validate(&server, &token).await.1["is_valid"], true);

    fault(&proxy);
    let (status, ready_took) = ready(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready_took < READY_ANSWER, "readiness answered after {ready_took:?}");
    let during = validate(&server, &token).await;
    assert_unavailable(&during);
    let bearer = server.client.get(server.url("/sessions/validate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(bearer.status(), StatusCode::SERVICE_UNAVAILABLE, "GET must not call the session invalid either");

    proxy.restore();
    let recovered = until_ready(&server).await;
    let after = validate(&server, &token).await;
    assert_eq!((after.0, &after.1["is_valid"]), (StatusCode::OK, &json!(true)), "the first request after it");
    println!(
        "FIGURE {name}: ready=503 in {} ms; validation=503 in {} ms; ready again {} ms after the fault ended; first \
         validation after: {}",
        ready_took.as_millis(),
        during.2.as_millis(),
        recovered.as_millis(),
        after.0.as_u16()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_answers_503_quickly_and_service_resumes_without_a_restart() {
    outage("database stopped (connections closed, new ones refused)", FaultProxy::cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_database_answers_503_within_the_connection_wait() {
    outage("database partitioned (bytes swallowed, no answer)", FaultProxy::blackhole).await;
}

/// A PostgreSQL restart or fail-over kills every pooled connection at once; the requests right after it must not
/// pay for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_costs_no_request() {
    let BehindProxy { server, proxy, _db } = behind_proxy().await;
    let token = session(&server).await;
    // Warm the pool: every connection open and idle.
    assert!(validations(&server, &token, 10).await.iter().all(|(status, ..)| *status == StatusCode::OK));
    let connections_before = proxy.accepted();

    proxy.reset();
    let answers = validations(&server, &token, 50).await;
    let failed: Vec<_> = answers.iter().filter(|(status, ..)| *status != StatusCode::OK).collect();
    assert!(failed.is_empty(), "{} of 50 failed after the restart: {failed:?}", failed.len());
    assert!(answers.iter().all(|(_, body, _)| body["is_valid"] == true));
    println!(
        "FIGURE database restart (every pooled connection reset): 50 validations right after, 10 at a time: {} \
         failed; {} connections replaced",
        failed.len(),
        proxy.accepted() - connections_before
    );
}

/// While the database cannot take writes: marking a session used answers Hanko's 503 in time, and reading it still
/// calls it valid. Returns the write's answer.
async fn writes_refused_reads_served(server: &TestServer, token: &str) -> (StatusCode, serde_json::Value, Duration) {
    // A minute on, so that marking the session used really changes its row.
    server.clock.advance(Duration::from_secs(60));
    let during = validate(server, token).await;
    assert_unavailable(&during);
    let read = server.client.get(server.url("/sessions/validate")).bearer_auth(token).send().await.unwrap();
    let read: serde_json::Value = read.json().await.unwrap();
    assert_eq!(read["is_valid"], true, "reads go on while writes cannot");
    during
}

/// SQLite's integrity check of the database at `url`, asserted to pass; its answer.
async fn integrity_check(url: &str) -> String {
    use sqlx::{Connection, Row};
    let mut check = sqlx::SqliteConnection::connect(url).await.unwrap();
    let integrity: String = sqlx::query("PRAGMA integrity_check").fetch_one(&mut check).await.unwrap().get(0);
    assert_eq!(integrity, "ok");
    check.close().await.unwrap();
    integrity
}

/// A small filesystem of its own (tmpfs) for a database to fill up; unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts `size` of tmpfs; `None` where mounting is refused (it needs root, or `CAP_SYS_ADMIN` in a container).
    fn mount(size: &str) -> Option<Self> {
        let path = std::env::temp_dir().join(format!("gatehouse-small-disk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&path).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            let _ = std::fs::remove_dir(&path);
            return None;
        }
        Some(Self { path })
    }

    /// Fills every free byte with one file, whose removal gives the space back.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("create the filler");
        for chunk in [64 * 1024, 512] {
            while file.write_all(&vec![0; chunk]).is_ok() {}
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a file still open somewhere must not leave the mount behind.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A user with no email, as the store makes them.
fn new_user() -> gatehouse_store::NewUser {
    gatehouse_store::NewUser {
        id: uuid::Uuid::new_v4().into(),
        name: Some("Filler".into()),
        given_name: None,
        family_name: None,
        picture: None,
        email: None,
        created_at: Timestamp::from_millis(1_800_000_000_000),
    }
}

/// SQLite on a full disk: writes answer 503 and reads go on; once space returns, writes resume on the same
/// connection, every write that was answered success is there, and the file passes SQLite's integrity check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_loses_nothing_and_writes_resume_when_space_returns() {
    let Some(disk) = SmallDisk::mount("4m") else {
        println!("SKIPPED a_full_disk_answers_503…: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let db = TestDb::new(Backend::Sqlite).await;
    let url = format!("sqlite://{}", disk.path.join("gatehouse.db").display());
    let mut config = test_config(&db);
    config.database.url = DatabaseUrl::new(url.clone());
    let server = TestServer::start_with(config).await;
    let store = server.store.clone();
    let token = session(&server).await;
    let mut users = 1;

    let filler = disk.fill();
    // SQLite first reuses the free space it has; the disk refuses a write once that is gone.
    let mut refusal = None;
    for _ in 0..10_000 {
        match store.create_user(&new_user()).await {
            Ok(()) => users += 1,
            Err(error) => {
                refusal = Some(error);
                break;
            }
        }
    }
    let refusal = refusal.expect("a full disk refuses a write");
    assert!(refusal.is_unavailable(), "a full disk is an outage, not a bug: {refusal}");
    let during = writes_refused_reads_served(&server, &token).await;

    std::fs::remove_file(filler).unwrap();
    let started = Instant::now();
    let after = validate(&server, &token).await;
    assert_eq!((after.0, &after.1["is_valid"]), (StatusCode::OK, &json!(true)), "the first write after space returns");
    store.create_user(&new_user()).await.expect("writes resume");
    users += 1;
    let resumed = started.elapsed();
    assert_eq!(store.count_users().await.unwrap(), users, "every write answered success is there");
    server.stop().await;

    let integrity = integrity_check(&url).await;
    println!(
        "FIGURE SQLite disk full (4 MiB tmpfs filled): write=503 in {} ms, reads 200; {users} users written, {users} \
         found; writes resumed {} ms after space returned; integrity_check: {integrity}",
        during.2.as_millis(),
        resumed.as_millis()
    );
}

/// Files that even root cannot write (the immutable attribute, `chattr +i`: root ignores file modes); writable
/// again when dropped.
struct Unwritable {
    files: Vec<std::path::PathBuf>,
}

impl Unwritable {
    /// `None` where the attribute cannot be set (it needs `CAP_LINUX_IMMUTABLE` and a filesystem that has it).
    fn set(files: Vec<std::path::PathBuf>) -> Option<Self> {
        let done = chattr("+i", &files);
        // Made even when refused, so that dropping it clears a file that was set before the refusal.
        let unwritable = Self { files };
        done.then_some(unwritable)
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        chattr("-i", &self.files);
    }
}

fn chattr(change: &str, files: &[std::path::PathBuf]) -> bool {
    std::process::Command::new("chattr")
        .arg(change)
        .args(files)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// SQLite's files turned read-only under a running server: writes answer 503 and reads go on; once the files are
/// writable again, writes resume, every write that was answered success is there, and the file passes SQLite's
/// integrity check. The `-shm` file stays writable: SQLite maps it into memory, and a write to an immutable mapping
/// kills the process (SIGBUS), which no server can answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_answers_503_loses_nothing_and_writes_resume_when_writable_again() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start_with(test_config(&db)).await;
    let store = server.store.clone();
    let token = session(&server).await;
    store.create_user(&new_user()).await.unwrap();
    let mut users = 2;
    let file = db.url().strip_prefix("sqlite://").expect("a SQLite file URL").to_owned();
    let files = ["", "-wal"].map(|suffix| format!("{file}{suffix}").into()).to_vec();
    let Some(unwritable) = Unwritable::set(files) else {
        println!("SKIPPED a_read_only_database…: `chattr +i` needs root (CAP_LINUX_IMMUTABLE) and ext4, XFS or tmpfs");
        return;
    };

    let refusal = store.create_user(&new_user()).await.expect_err("a read-only file refuses a write");
    assert!(refusal.is_unavailable(), "a read-only file is an outage, not a bug: {refusal}");
    let during = writes_refused_reads_served(&server, &token).await;

    drop(unwritable);
    let started = Instant::now();
    let after = validate(&server, &token).await;
    assert_eq!((after.0, &after.1["is_valid"]), (StatusCode::OK, &json!(true)), "the first write after it");
    store.create_user(&new_user()).await.expect("writes resume");
    users += 1;
    let resumed = started.elapsed();
    assert_eq!(store.count_users().await.unwrap(), users, "every write answered success is there");
    server.stop().await;

    let integrity = integrity_check(db.url()).await;
    println!(
        "FIGURE SQLite file read-only (chattr +i on the database and its WAL): write=503 in {} ms ({refusal}), reads \
         200; {users} users written, {users} found; writes resumed {} ms after the file was writable again; \
         integrity_check: {integrity}",
        during.2.as_millis(),
        resumed.as_millis()
    );
}

/// A server started on a database file that cannot be written (restored read-only from a backup, a read-only
/// mount): SQLite opens such a file read-only and would keep that connection read-only for good. The server starts,
/// reads are served, writes answer 503, and once the file is writable writes resume without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_on_a_read_only_database_writes_once_the_file_is_writable() {
    let db = TestDb::new(Backend::Sqlite).await;
    let first = TestServer::start_with(test_config(&db)).await;
    let token = session(&first).await;
    first.stop().await;
    let file = db.url().strip_prefix("sqlite://").expect("a SQLite file URL").to_owned();
    let files = ["", "-wal"]
        .map(|suffix| format!("{file}{suffix}").into())
        .into_iter()
        .filter(|f: &std::path::PathBuf| f.exists());
    let Some(unwritable) = Unwritable::set(files.collect()) else {
        println!("SKIPPED a_server_started_on_a_read_only_database…: `chattr +i` needs root and ext4, XFS or tmpfs");
        return;
    };

    let server = TestServer::start_with(test_config(&db)).await;
    let refusal = server.store.create_user(&new_user()).await.expect_err("a read-only file refuses a write");
    assert!(refusal.is_unavailable(), "a read-only file is an outage, not a bug: {refusal}");
    writes_refused_reads_served(&server, &token).await;

    drop(unwritable);
    server.store.create_user(&new_user()).await.expect("writes resume without a restart");
    let after = validate(&server, &token).await;
    assert_eq!((after.0, &after.1["is_valid"]), (StatusCode::OK, &json!(true)));
    server.stop().await;
    assert_eq!(integrity_check(db.url()).await, "ok");
}
