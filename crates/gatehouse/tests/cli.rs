//! The `gatehouse` binary as an operator uses it: config check, migrate, serve, keys rotate, restart.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use gatehouse_core::config::hanko::HANKO_ENV;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
/// The configured admin key, and its hash as `gatehouse admin-key hash` prints it (the form the config holds).
const ADMIN_KEY: &str = "cli-test-admin-key-0123456789abcdefgh";
const ADMIN_KEY_HASH: &str = "sha256:eaXTP5EPy4eD6PzIkT6dp-6fdwpsRtytVYfe-KuX3I4";

fn gatehouse(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") || HANKO_ENV.iter().any(|(name, _, _)| *name == key) {
            command.env_remove(key);
        }
    }
    command
}

fn write_config(dir: &Path, extra: &str) -> String {
    let db = dir.join("gatehouse.db");
    let text = format!(
        "server:\n  public:\n    address: \"127.0.0.1:0\"\n  admin:\n    address: \"127.0.0.1:0\"\n    api_keys: [\"{ADMIN_KEY_HASH}\"]\ndatabase:\n  url: \"sqlite://{}\"\nsecret_keys: [\"cli-test-secret-0123456789\"]\n{extra}",
        db.display()
    );
    let path = dir.join("gatehouse.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A running `gatehouse serve`; killed (SIGTERM) when dropped.
struct Running {
    child: Option<Child>,
    base: String,
    admin: Option<String>,
    startup_log: Vec<String>,
}

impl Running {
    /// Starts and waits for the start-up log to name the listeners (the admin one, then the public paths).
    fn start(mut command: Command) -> Self {
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let (mut seen, mut base, mut admin) = (Vec::new(), None, None);
        loop {
            match receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let after = |marker: &str| line.split(marker).nth(1).map(|rest| rest.trim().to_owned());
                    base = base.or_else(|| after("listening on "));
                    admin = admin.or_else(|| after("Admin API and console on "));
                    if let (Some(base), true) = (&base, line.ends_with("/health/ready")) {
                        std::thread::spawn(move || while receiver.recv().is_ok() {});
                        return Self { child: Some(child), base: base.clone(), admin, startup_log: seen };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("gatehouse did not start; it said:\n{}", seen.join("\n"))
                }
            }
        }
    }

    /// The status of `GET path` on the admin listener with `key`.
    fn admin_status(&self, path: &str, key: &str) -> u16 {
        let url = format!("{}{path}", self.admin.as_deref().expect("the admin API is on"));
        let output = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("authorization: Bearer {key}"), &url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&output.stdout).parse().unwrap()
    }

    /// `GET path` on the admin listener with the configured admin key.
    fn admin_get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.admin.as_deref().expect("the admin API is on"));
        let output = Command::new("curl")
            .args(["-sf", "-H", &format!("authorization: Bearer {ADMIN_KEY}"), &url])
            .output()
            .expect("curl");
        assert!(output.status.success(), "GET {url} failed");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let output = Command::new("curl").args(["-sf", &url]).output().expect("curl");
        assert!(output.status.success(), "GET {url} failed");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        assert!(status.success(), "SIGTERM should stop gatehouse cleanly: {status}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn config_check_names_the_bad_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "session:\n  lifespn: 1h\n");
    let output = gatehouse(dir.path(), &["config", "check", "--config", &config]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lifespn"), "{stderr}");

    let config = write_config(dir.path(), "third_party:\n  providers:\n    microsoft:\n      enabled: true\n");
    let output = gatehouse(dir.path(), &["config", "check", "--config", &config]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in ["third_party.redirect_url", "third_party.providers.microsoft.client_id"] {
        assert!(stderr.contains(key), "{key} missing from: {stderr}");
    }
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "third_party:\n  redirect_url: https://auth.example.com/thirdparty/callback\n  providers:\n    microsoft:\n      secret: super-secret-value\n",
    );
    let output = gatehouse(dir.path(), &["config", "check", "--config", &config])
        .env("GATEHOUSE_SESSION__LIMIT", "7")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("limit: 7"), "environment overrides show: {stdout}");
    assert!(stdout.contains("<redacted>"));
    assert!(!stdout.contains("super-secret-value") && !stdout.contains("cli-test-secret"), "{stdout}");
    assert!(
        stdout.contains("Redirect URL for the Azure app registration: https://auth.example.com/thirdparty/callback")
    );
}

#[test]
fn serve_restart_and_rotate_keep_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let migrate = gatehouse(dir.path(), &["migrate", "--config", &config]).output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    assert_eq!(server.get("/health/ready")["ready"], true);
    let first = kids(&server.get("/.well-known/jwks.json"));
    assert_eq!(first.len(), 1);
    server.stop();

    let rotate = gatehouse(dir.path(), &["keys", "rotate", "--config", &config]).output().unwrap();
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));

    let server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    let after = kids(&server.get("/.well-known/jwks.json"));
    assert_eq!(after.len(), 2, "the old key stays published after a rotation");
    assert_eq!(after[1], first[0], "the key survived the restart");
    server.stop();
}

#[test]
fn new_certificate_stores_the_key_and_prints_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let output = gatehouse(
        dir.path(),
        &["credentials", "new-certificate", "--config", &config, "--provider", "microsoft", "--days", "30"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("-----BEGIN CERTIFICATE-----") && stdout.contains("x5t#S256"), "{stdout}");
    assert!(!stdout.contains("PRIVATE KEY"), "the key is never printed");
    // What SQLite holds on disk: the database file and, until a checkpoint, its write-ahead log.
    let stored: Vec<u8> = ["gatehouse.db", "gatehouse.db-wal"]
        .iter()
        .filter_map(|file| std::fs::read(dir.path().join(file)).ok())
        .flatten()
        .collect();
    let text = String::from_utf8_lossy(&stored);
    assert!(text.contains("sealed_private_key") && !text.contains("PRIVATE KEY"), "stored, and only encrypted");

    let server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    let settings = server.admin_get("/identity-providers");
    let certificates = settings["providers"]["microsoft"]["certificates"].as_array().unwrap().clone();
    assert_eq!(certificates.len(), 1, "{settings}");
    assert_eq!(certificates[0]["source"], "console");
    assert!(stdout.contains(certificates[0]["thumbprint"].as_str().unwrap()));
    let days = certificates[0]["expires_in_seconds"].as_i64().unwrap() / 86_400;
    assert!((29..=30).contains(&days), "{days}");
    server.stop();
}

#[test]
fn admin_keys_are_created_listed_hashed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let run = |args: &[&str]| {
        let output = gatehouse(dir.path(), args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let created = run(&["admin-key", "new", "--config", &config, "--name", "terraform"]);
    let key = created.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("gha_"), "{created}");
    let id = created.split_whitespace().nth(2).unwrap().to_owned();
    let listed = run(&["admin-key", "list", "--config", &config]);
    assert!(listed.contains(&id) && listed.contains("terraform") && !listed.contains(&key), "{listed}");

    let server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    assert_eq!(server.admin_status("/users", &key), 200, "a key from the database works");
    assert_eq!(server.admin_status("/users", ADMIN_KEY), 200, "a key from the configuration works");
    run(&["admin-key", "revoke", "--config", &config, &id]);
    assert_eq!(server.admin_status("/users", &key), 401, "revoked: refused from the next request on");
    server.stop();
    assert!(run(&["admin-key", "list", "--config", &config]).contains("revoked 20"));

    let mut hash =
        gatehouse(dir.path(), &["admin-key", "hash"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    hash.stdin.take().unwrap().write_all(format!("{ADMIN_KEY}\n").as_bytes()).unwrap();
    let printed = String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(printed.trim(), ADMIN_KEY_HASH);
}

#[test]
fn admin_key_names_must_be_one_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    for name in ["", "  ", "ops\nforged line", &"x".repeat(65)] {
        let output =
            gatehouse(dir.path(), &["admin-key", "new", "--config", &config, "--name", name]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name:?} was accepted");
        assert!(stderr.contains("--name") && stderr.contains("a name must"), "a clear error for {name:?}: {stderr}");
        assert!(output.stdout.is_empty(), "no key is made for {name:?}");
    }
}

#[test]
fn serve_refuses_an_admin_api_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace(ADMIN_KEY_HASH, "")).unwrap();
    let output = gatehouse(dir.path(), &["serve", "--config", &config]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("admin-key new"), "the message says what to do: {stderr}");
}

/// `gatehouse` with no configuration (development mode), on free ports.
fn development_mode(dir: &Path) -> Command {
    let mut command = gatehouse(dir, &[]);
    command
        .env("GATEHOUSE_SERVER__PUBLIC__ADDRESS", "127.0.0.1:0")
        .env("GATEHOUSE_SERVER__ADMIN__ADDRESS", "127.0.0.1:0");
    command
}

#[test]
fn no_config_starts_in_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(development_mode(dir.path()));
    let log = server.startup_log.join("\n");
    assert!(log.contains("DEVELOPMENT MODE") && log.contains("gatehouse.secret"), "{log}");
    let key =
        log.split("(shown only now): ").nth(1).expect("a development admin key is printed").lines().next().unwrap();
    assert_eq!(server.admin_status("/identity-providers", key.trim()), 200);
    assert_eq!(server.get("/health/ready")["ready"], true);
    assert_eq!(server.get("/sessions/validate")["is_valid"], false);
    server.stop();
    assert!(dir.path().join("gatehouse.db").exists(), "an embedded SQLite file in the working folder");
    let secret = std::fs::read_to_string(dir.path().join("gatehouse.secret")).unwrap();
    assert!(secret.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("gatehouse.secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the dev secret is readable by its owner only");
    }
}

#[test]
fn version_names_the_release_and_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(dir.path(), &["--version"]).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let commit = stdout
        .trim()
        .strip_prefix(concat!("gatehouse ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("gatehouse <version> (commit <commit>): {stdout}"));
    // This test runs from a git checkout when git is installed; a source archive says "unknown".
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok();
    match head.filter(|head| head.status.success()) {
        Some(head) => assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim()),
        None => assert_eq!(commit, "unknown"),
    }
}

/// A configuration file meeting the database that development mode made (the newcomer's first two starts): the
/// error says once what happened and what to do.
#[test]
fn a_development_database_under_a_configuration_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(development_mode(dir.path()));
    assert_eq!(server.get("/health/ready")["ready"], true, "serving, so its signing key is stored");
    server.stop();

    let config = write_config(dir.path(), "");
    let output = gatehouse(dir.path(), &["serve", "--config", &config]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("development mode") && stderr.contains("database.url"), "what to do: {stderr}");
    assert_eq!(stderr.matches("does not open").count(), 1, "the cause once: {stderr}");
}

/// Hanko's own sample configuration with Microsoft on, as a Hanko team has it.
const HANKO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hanko-config.yaml");

/// `gatehouse` on a Hanko configuration, with what a test must set given through the environment: the database
/// and the listen addresses in Hanko's variables, the admin key in Gatehouse's.
fn gatehouse_on_hanko_config(dir: &Path, args: &[&str], config: &str) -> Command {
    let mut command = gatehouse(dir, args);
    command
        .env("GATEHOUSE_CONFIG", config)
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("gatehouse.db").display()))
        .env("SERVER_PUBLIC_ADDRESS", "127.0.0.1:0")
        .env("SERVER_ADMIN_ADDRESS", "127.0.0.1:0")
        .env("GATEHOUSE_SERVER__ADMIN__API_KEYS", format!("[\"{ADMIN_KEY_HASH}\"]"));
    command
}

#[test]
fn a_hanko_config_yaml_starts_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let check = gatehouse_on_hanko_config(dir.path(), &["config", "check"], HANKO_CONFIG).output().unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("audience:\n  - example.com"), "the audience follows webauthn.relying_party.id: {stdout}");
    assert!(stdout.contains("https://*.example.com") && stdout.contains("enabled: true"), "{stdout}");

    let server = Running::start(gatehouse_on_hanko_config(dir.path(), &["serve"], HANKO_CONFIG));
    assert_eq!(server.get("/health/ready")["ready"], true);
    assert_eq!(server.admin_status("/users", ADMIN_KEY), 200);
    server.stop();
}

#[test]
fn a_hanko_config_with_several_bad_keys_fails_once_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(HANKO_CONFIG)
        .unwrap()
        .replace("password:\n  enabled: false", "password:\n  enabled: true")
        .replace("    google:\n      enabled: false", "    google:\n      enabled: true")
        .replace("  lifespan: 12h", "  lifespn: 12h")
        .replace("\nlog:\n", "\nlog:\n  level: verbose\n")
        .replace("        - https://*.example.com", "        - https://app-*.example.com");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    let output = gatehouse_on_hanko_config(dir.path(), &["serve"], config.to_str().unwrap()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|line| line.starts_with("  - ")).collect();
    assert_eq!(problems.len(), 5, "one line per problem: {stderr}");
    for expected in [
        "  - log.level: \"verbose\" is not a log level",
        "  - password: Gatehouse has no password sign-in",
        "  - server.public.cors.allow_origins: \"https://app-*.example.com\": a wildcard must be the leftmost part",
        "  - session.lifespn: unknown key (did you mean lifespan?)",
        "  - third_party.providers.google: Gatehouse has no Sign in with Google",
    ] {
        assert!(problems.iter().any(|line| line.starts_with(expected)), "{expected} missing from:\n{stderr}");
    }
    assert!(stderr.contains("invalid configuration (5 problems)"), "{stderr}");
    assert!(!stderr.contains('`') && !stderr.contains("default."), "{stderr}");
    assert!(!dir.path().join("gatehouse.db").exists(), "nothing was started");
}

#[test]
fn the_config_file_is_named_before_or_after_the_command_or_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    for args in [vec!["--config", &config, "config", "check"], vec!["config", "check", "-c", &config]] {
        let output = gatehouse(dir.path(), &args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let output = gatehouse(dir.path(), &["config", "check"]).env("GATEHOUSE_CONFIG", &config).output().unwrap();
    assert!(output.status.success(), "GATEHOUSE_CONFIG: {}", String::from_utf8_lossy(&output.stderr));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("cli-test-secret"), "secrets stay redacted");
    let help = gatehouse(dir.path(), &["--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config <FILE>"));
}

#[test]
fn cli_edges_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let failure = |command: &mut Command| {
        let output = command.stdin(Stdio::null()).output().unwrap();
        assert!(!output.status.success(), "{command:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = failure(&mut gatehouse(dir.path(), &["keys", "rotate"]));
    assert!(stderr.contains("--config FILE") && stderr.contains("--dev"), "{stderr}");
    assert!(!dir.path().join("gatehouse.secret").exists() && !dir.path().join("gatehouse.db").exists());

    let stderr = failure(&mut gatehouse(dir.path(), &["admin-key", "revoke", "ops"]));
    assert!(stderr.contains("a UUID") && stderr.contains("admin-key list"), "{stderr}");
    let stderr = failure(&mut gatehouse(dir.path(), &["admin-key", "hash"]));
    assert!(stderr.contains("no key on standard input"), "{stderr}");

    let config = write_config(dir.path(), "database:\n  url: postgres://gate:hunter2@127.0.0.1:1/gatehouse\n");
    let started = std::time::Instant::now();
    let stderr = failure(&mut gatehouse(dir.path(), &["migrate", "--config", &config]));
    assert!(stderr.contains("cannot reach PostgreSQL at 127.0.0.1:1"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    let check = gatehouse(dir.path(), &["config", "check", "--config", &config]).output().unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("postgres://gate:<redacted>@127.0.0.1:1/gatehouse") && !stdout.contains("hunter2"));

    let config = write_config(dir.path(), "");
    let run = |args: &[&str]| String::from_utf8(gatehouse(dir.path(), args).output().unwrap().stdout).unwrap();
    assert!(run(&["migrate", "--config", &config]).contains("migrations applied"));
    let again = gatehouse(dir.path(), &["migrate", "--config", &config]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("already up to date"));
    assert!(!String::from_utf8_lossy(&again.stderr).contains("NOTICE"));

    let config = write_config(dir.path(), "session:\n  limit: 0\n");
    let check = gatehouse(dir.path(), &["config", "check", "--config", &config]).output().unwrap();
    assert!(check.stdout.is_empty(), "only the problem, not the whole configuration");
    assert!(String::from_utf8_lossy(&check.stderr).contains("session.limit: must be at least 1"));
}
