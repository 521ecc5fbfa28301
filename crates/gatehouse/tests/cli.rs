//! The `gatehouse` binary as an operator uses it: config check, migrate, serve, keys rotate, restart.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn gatehouse(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") || key.starts_with("THIRD_PARTY_") {
            command.env_remove(key);
        }
    }
    command
}

fn write_config(dir: &Path, extra: &str) -> String {
    let db = dir.join("gatehouse.db");
    let text = format!(
        "server:\n  public:\n    address: \"127.0.0.1:0\"\ndatabase:\n  url: \"sqlite://{}\"\nsecret_keys: [\"cli-test-secret-0123456789\"]\n{extra}",
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
    startup_log: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(base) = line.split("listening on ").nth(1) {
                        let base = base.trim().to_owned();
                        std::thread::spawn(move || while receiver.recv().is_ok() {});
                        return Self { child: Some(child), base, startup_log: seen };
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
fn new_certificate_writes_a_private_key_and_prints_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse(dir.path(), &["credentials", "new-certificate", "--provider", "microsoft", "--days", "30"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("-----BEGIN CERTIFICATE-----") && stdout.contains("x5t#S256"), "{stdout}");
    assert!(!stdout.contains("PRIVATE KEY"), "the key is never printed");
    let key_file = dir.path().join("gatehouse-microsoft-key.pem");
    assert!(std::fs::read_to_string(&key_file).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o077, 0);
    }
    let again = gatehouse(dir.path(), &["credentials", "new-certificate"]).output().unwrap();
    assert!(!again.status.success(), "an existing key file is never overwritten");
}

#[test]
fn no_config_starts_in_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = gatehouse(dir.path(), &[]);
    command.env("GATEHOUSE_SERVER__PUBLIC__ADDRESS", "127.0.0.1:0");
    let server = Running::start(command);
    let log = server.startup_log.join("\n");
    assert!(log.contains("DEVELOPMENT MODE") && log.contains("gatehouse.secret"), "{log}");
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
