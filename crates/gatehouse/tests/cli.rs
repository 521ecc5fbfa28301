//! The `gatehouse` binary as an operator uses it: config check, migrate, serve, keys rotate, restart.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use gatehouse_core::config::hanko::HANKO_ENV;
use serde_json::Value;

// In a folder of their own, which cargo does not take for test targets of their own.
#[path = "cli/hanko_import.rs"]
mod hanko_import;
#[path = "cli/rolling.rs"]
mod rolling;
#[path = "cli/soak.rs"]
mod soak;

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
    write_config_on(dir, &format!("sqlite://{}", dir.join("gatehouse.db").display()), extra)
}

/// [`write_config`] on the database at `url`.
fn write_config_on(dir: &Path, url: &str, extra: &str) -> String {
    let text = format!(
        "server:\n  public:\n    address: \"127.0.0.1:0\"\n  admin:\n    address: \"127.0.0.1:0\"\n    api_keys: [\"{ADMIN_KEY_HASH}\"]\ndatabase:\n  url: \"{url}\"\nsecret_keys: [\"cli-test-secret-0123456789\"]\n{extra}"
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
fn consent_url_prints_the_admin_consent_url_and_who_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = gatehouse(dir.path(), args).stdin(Stdio::null()).output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    };
    let (ok, _, stderr) = run(&["consent-url", "--tenant", "contoso.com"]);
    assert!(!ok && stderr.contains("--config FILE"), "no configuration, no development database: {stderr}");
    assert!(!dir.path().join("gatehouse.db").exists());

    let config = write_config(dir.path(), "");
    let (ok, _, stderr) = run(&["consent-url", "--config", &config, "--tenant", "contoso.com"]);
    assert!(!ok && stderr.contains("Microsoft is not configured"), "{stderr}");

    let microsoft = "third_party:\n  redirect_url: https://auth.example.com/thirdparty/callback\n  providers:\n    \
                     microsoft:\n      client_id: 11111111-2222-3333-4444-555555555555\n      tenant: contoso.com\n";
    let config = write_config(dir.path(), microsoft);
    let (ok, stdout, stderr) = run(&["consent-url", "--config", &config, "--tenant", "Fabrikam.com"]);
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    let url = url::Url::parse(lines.next().unwrap()).unwrap();
    assert_eq!(
        url.as_str().split('?').next(),
        Some("https://login.microsoftonline.com/fabrikam.com/v2.0/adminconsent")
    );
    let query: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
    assert!(query.contains(&("client_id".into(), "11111111-2222-3333-4444-555555555555".into())), "{url}");
    assert!(query.contains(&("redirect_uri".into(), "https://auth.example.com/thirdparty/callback".into())));
    assert!(query.contains(&("scope".into(), "https://graph.microsoft.com/.default".into())));
    assert!(lines.next().unwrap().contains("an administrator of the tenant fabrikam.com"), "{stdout}");
    assert_eq!(lines.next(), None);

    let (ok, stdout, _) = run(&["consent-url", "--config", &config]);
    assert!(ok && stdout.starts_with("https://login.microsoftonline.com/contoso.com/v2.0/adminconsent?"), "{stdout}");
    let (ok, stdout, _) = run(&["consent-url", "--config", &config, "--tenant", "common"]);
    assert!(ok && stdout.starts_with("https://login.microsoftonline.com/organizations/v2.0/"), "{stdout}");
    let (ok, _, stderr) = run(&["consent-url", "--config", &config, "--tenant", "consumers"]);
    assert!(!ok && stderr.contains("personal Microsoft accounts"), "{stderr}");
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
    assert!(stdout.contains("user_email: '{{.User.Email.Address}}'"), "the JWT template is honoured: {stdout}");

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
        .replace("        - https://*.example.com", "        - https://app-*.example.com")
        .replace("      role: user", "      role: \"{{if .User.Email}}admin{{end}}\"");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    let output = gatehouse_on_hanko_config(dir.path(), &["serve"], config.to_str().unwrap()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|line| line.starts_with("  - ")).collect();
    assert_eq!(problems.len(), 6, "one line per problem: {stderr}");
    for expected in [
        "  - log.level: \"verbose\" is not a log level",
        "  - password: Gatehouse has no password sign-in",
        "  - server.public.cors.allow_origins: \"https://app-*.example.com\": a wildcard must be the leftmost part",
        "  - session.jwt_template.claims: role: only field placeholders like {{.User.Email.Address}} are supported; \
         {{if …}} is not",
        "  - session.lifespn: unknown key (did you mean lifespan?)",
        "  - third_party.providers.google: Gatehouse has no Sign in with Google",
    ] {
        assert!(problems.iter().any(|line| line.starts_with(expected)), "{expected} missing from:\n{stderr}");
    }
    assert!(stderr.contains("invalid configuration (6 problems)"), "{stderr}");
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
fn custom_claims_and_the_jwt_template_are_read_from_yaml_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let claims = "session:\n  custom_claims:\n    department: { type: string, id_token: department }\n    plan: { type: \
                  string, per_tenant: { \"72f988bf-86f1-41af-91ab-2d7cd011db47\": gold, \"*\": free } }\n  \
                  jwt_template:\n    claims:\n      app: { dept: \"{{.Claims.department}}\", n: 1 }\n  max_jwt_bytes: 4096\n";
    let config = write_config(dir.path(), claims);
    let output = gatehouse(dir.path(), &["config", "check", "--config", &config]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("72f988bf-86f1-41af-91ab-2d7cd011db47: gold") && stdout.contains("max_jwt_bytes: 4096"));

    let bad = claims.replace("id_token: department", "graph: \"a,b\"").replace("4096", "100");
    let config = write_config(dir.path(), &bad);
    let output = gatehouse(dir.path(), &["config", "check", "--config", &config]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let problems: Vec<&str> = stderr.lines().filter(|line| line.starts_with("  - ")).collect();
    assert_eq!(
        problems,
        vec![
            "  - session.max_jwt_bytes: must be between 1024 and 65536 bytes",
            "  - session.custom_claims: department: graph: \"a,b\" is not a Graph user property name (a letter \
             followed by up to 63 letters, digits or _, such as employeeType)",
        ],
        "{stderr}"
    );
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

/// The fake Entra ID's app registration, and the Microsoft settings that point Gatehouse at it.
mod microsoft {
    use gatehouse_testkit::fake_entra::{FakeEntra, FakeEntraOptions, FakeUser};

    pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
    pub const SECRET: &str = "fake-client-secret-value~42";
    pub const CALLBACK: &str = "https://auth.gatehouse.test/thirdparty/callback";
    pub const APP: &str = "https://app.example.com";

    /// The fake Entra ID with this app registration, making a new user for every sign-in.
    pub async fn fake_entra() -> FakeEntra {
        let entra = FakeEntra::start(FakeEntraOptions {
            client_id: CLIENT_ID.into(),
            client_secrets: vec![SECRET.into()],
            redirect_uris: vec![CALLBACK.into()],
            certificates: Vec::new(),
        })
        .await;
        entra.set_user_factory(|| FakeUser::new(format!("{}@contoso.com", uuid::Uuid::new_v4().simple())));
        entra
    }

    /// The settings for sign-ins against `entra` under load: no rate limits, since one client makes every sign-in.
    pub fn load_config(entra: &FakeEntra) -> String {
        format!("{}rate_limiter:\n  enabled: false\n", config(&entra.base_url()))
    }

    pub fn config(cloud_instance: &str) -> String {
        format!(
            "third_party:\n  redirect_url: {CALLBACK}\n  error_redirect_url: {APP}/error\n  allowed_redirect_urls: \
             [\"{APP}**\"]\n  providers:\n    microsoft:\n      enabled: true\n      client_id: {CLIENT_ID}\n      \
             secret: \"{SECRET}\"\n      cloud_instance: {cloud_instance}\n"
        )
    }
}

/// An HTTP client that, like a browser in these tests, sees each redirect rather than following it; a request that
/// hangs fails after 30 s (the server's own request timeout) instead of hanging the test.
fn browser() -> reqwest::Client {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    builder.timeout(Duration::from_secs(30)).build().unwrap()
}

/// What a sign-in hands the app.
struct SignedIn {
    user: uuid::Uuid,
    /// The session JWT, from `X-Auth-Token` or the session cookie.
    session: String,
}

/// One whole sign-in with Microsoft over HTTP, as a browser and an app make it: `/thirdparty/auth`, the fake's
/// authorize endpoint, the callback, `POST /token`. The signed-in user and session, or what went wrong.
async fn sign_in(client: &reqwest::Client, base: &str) -> Result<SignedIn, String> {
    let failed = |error: reqwest::Error| error.to_string();
    let location = |response: &reqwest::Response| -> Result<reqwest::Url, String> {
        let location = response.headers().get("location").ok_or(format!("{} without a location", response.status()))?;
        reqwest::Url::parse(location.to_str().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    };
    let start = client
        .get(format!("{base}/thirdparty/auth"))
        .query(&[("provider", "microsoft"), ("redirect_to", &format!("{}/", microsoft::APP))])
        .send()
        .await
        .map_err(failed)?;
    let cookies: Vec<&str> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok()?.split(';').next())
        .collect();
    let cookies = cookies.join("; ");
    let at_provider = client.get(location(&start)?).send().await.map_err(failed)?;
    let callback = format!("{base}/thirdparty/callback?{}", location(&at_provider)?.query().unwrap_or_default());
    let landing = client.get(callback).header("cookie", cookies).send().await.map_err(failed)?;
    let landing = location(&landing)?;
    let token = landing.query_pairs().find(|(name, _)| name == "hanko_token").ok_or(format!("no token: {landing}"))?.1;
    let response = client.post(format!("{base}/token")).json(&serde_json::json!({ "value": token })).send();
    let response = response.await.and_then(reqwest::Response::error_for_status).map_err(failed)?;
    let header = response.headers().get("x-auth-token").and_then(|value| value.to_str().ok());
    let cookie = || {
        response.headers().get_all("set-cookie").iter().find_map(|value| {
            let (name, value) = value.to_str().ok()?.split(';').next()?.split_once('=')?;
            (name == "hanko").then_some(value)
        })
    };
    let session = header.or_else(cookie).map(str::to_owned).ok_or("no session in the /token answer")?;
    let exchanged: Value = response.json().await.map_err(failed)?;
    let user =
        exchanged["user_id"].as_str().and_then(|id| id.parse().ok()).ok_or(format!("no user id: {exchanged}"))?;
    Ok(SignedIn { user, session })
}

/// `POST /sessions/validate` with `session`: whether Gatehouse calls it valid, or what went wrong (any answer but
/// a 200 is an error: a 503 would mean the session could not be checked).
async fn validate(client: &reqwest::Client, base: &str, session: &str) -> Result<bool, String> {
    let response = client
        .post(format!("{base}/sessions/validate"))
        .json(&serde_json::json!({ "session_token": session }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| error.to_string())?;
    let answer: Value = response.json().await.map_err(|error| error.to_string())?;
    answer["is_valid"].as_bool().ok_or(format!("no is_valid: {answer}"))
}

/// `POST /logout` with `session`: must answer 204.
async fn log_out(client: &reqwest::Client, base: &str, session: &str) -> Result<(), String> {
    let response = client.post(format!("{base}/logout")).bearer_auth(session).send().await;
    match response.map_err(|error| error.to_string())?.status() {
        reqwest::StatusCode::NO_CONTENT => Ok(()),
        status => Err(format!("logout answered {status}")),
    }
}

/// Requests (or visits) made under load and the errors of those that failed, shared by the load's tasks.
#[derive(Default)]
struct Tally {
    made: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, outcome: Result<(), String>) {
        self.made.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = outcome {
            self.failures.lock().unwrap().push(error);
        }
    }

    fn failed(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

/// Rows that a sign-in cut short could leave behind: users without an email or an identity (every user here
/// signed up with Microsoft), and identities, emails or sessions whose user is gone.
const HALF_MADE: &str = "SELECT
    (SELECT COUNT(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM emails e WHERE e.user_id = u.id)
                                     OR NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id))
  + (SELECT COUNT(*) FROM identities i WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = i.user_id))
  + (SELECT COUNT(*) FROM emails e WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id))
  + (SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id))";

/// kill -9 in the middle of sign-ins (eight at a time): after a restart, no half-made account, and every sign-in
/// that was answered is there.
#[test]
fn kill_9_during_sign_ins_leaves_no_half_made_account_on_sqlite() {
    kill_9_during_sign_ins(gatehouse_testkit::Backend::Sqlite);
}

#[test]
fn kill_9_during_sign_ins_leaves_no_half_made_account_on_postgres() {
    kill_9_during_sign_ins(gatehouse_testkit::Backend::Postgres);
}

fn kill_9_during_sign_ins(backend: gatehouse_testkit::Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(gatehouse_testkit::TestDb::new(backend));
    let entra = runtime.block_on(microsoft::fake_entra());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_on(dir.path(), db.url(), &microsoft::load_config(&entra));
    let mut server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    let pid = server.child.as_ref().unwrap().id().to_string();
    let client = browser();

    let (answered, cut_short) = runtime.block_on(async {
        let mut browsers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (client, base) = (client.clone(), server.base.clone());
            // Signs in over and over until the server dies under it.
            browsers.spawn(async move {
                let mut answered = Vec::new();
                loop {
                    match sign_in(&client, &base).await {
                        Ok(signed_in) => answered.push(signed_in.user),
                        Err(error) => return (answered, error),
                    }
                }
            });
        }
        // Load, then the kill, while sign-ins are in flight.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
        let ended = browsers.join_all().await;
        let cut_short: Vec<String> = ended.iter().map(|(_, error)| error.clone()).collect();
        (ended.into_iter().flat_map(|(answered, _)| answered).collect::<Vec<_>>(), cut_short)
    });
    let _ = server.child.take().unwrap().wait();
    let refused: Vec<_> = cut_short.iter().filter(|error| error.contains("without a location")).collect();
    assert!(refused.is_empty(), "sign-ins must end with the kill, not before it: {refused:?}");
    assert!(answered.len() >= 8, "too few sign-ins before the kill to mean anything: {cut_short:?}");

    let restarted = std::time::Instant::now();
    let server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    let restart = restarted.elapsed();
    let after = runtime.block_on(sign_in(&client, &server.base)).expect("sign-ins work after the restart").user;
    server.stop();

    let (half_made, users, missing) = runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut db = sqlx::AnyConnection::connect(db.url()).await.unwrap();
        let half_made: i64 = sqlx::query(HALF_MADE).fetch_one(&mut db).await.unwrap().get(0);
        let users: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut db).await.unwrap().get(0);
        let mut missing = 0;
        for user in answered.iter().chain([&after]) {
            let found = sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(user.to_string()).fetch_optional(&mut db);
            missing += usize::from(found.await.unwrap().is_none());
        }
        (half_made, users, missing)
    });
    assert_eq!(half_made, 0, "half-made rows after the kill");
    assert_eq!(missing, 0, "sign-ins that were answered are gone");
    println!(
        "FIGURE kill -9 during sign-ins (8 at a time, {backend:?}): {} answered before the kill, {users} users after the \
         restart ({} committed but unanswered); half-made rows: {half_made}; answered sign-ins missing: {missing}; \
         restart to ready in {} ms",
        answered.len(),
        users - 1 - answered.len() as i64,
        restart.as_millis()
    );
}
