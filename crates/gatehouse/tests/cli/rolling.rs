//! A rolling restart behind a real load balancer: two `gatehouse serve` processes on one PostgreSQL database
//! behind HAProxy, each stopped (SIGTERM) and started again in turn while browsers sign in and apps validate
//! sessions through HAProxy. Not one request may fail.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Running, Tally, browser, gatehouse, microsoft, sign_in, validate, write_config_on};

/// How long a stopping instance keeps serving while `/health/ready` answers 503: long enough for HAProxy's checks
/// (every 100 ms, two failures to mark it down) to take it out of rotation before it closes its listener.
const DRAIN: &str = "1s";

/// Debian's HAProxy, started on a configuration of the test's making; killed when dropped.
struct HaProxy {
    child: Child,
    /// The admin socket, where `show stat` tells what HAProxy thinks of each server.
    socket: PathBuf,
    base: String,
}

impl HaProxy {
    /// The HAProxy program, if it is installed (`apt-get install -y haproxy`; scripts/test installs it).
    fn program() -> Option<&'static str> {
        // As a user without /usr/sbin on the PATH, the program is still found.
        ["haproxy", "/usr/sbin/haproxy"]
            .into_iter()
            .find(|program| Command::new(program).arg("-v").output().is_ok_and(|output| output.status.success()))
    }

    /// Balances between the Gatehouse instances on `ports` (servers `gatehouse0`, `gatehouse1`, …).
    fn start(program: &str, dir: &Path, ports: &[u16]) -> Self {
        let socket = dir.join("haproxy.sock");
        let port = free_port();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(index, port)| format!("    server gatehouse{index} 127.0.0.1:{port}\n"))
            .collect();
        let config = format!(
            "global
    stats socket {socket} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    # A request that found an instance's listener closed (connection refused) is sent again, to the other
    # instance. Nothing else is retried: a request that an instance accepted and dropped is a failure.
    retries 3
    option redispatch 1
    retry-on conn-failure
    # A new connection per request to an instance: never a kept-alive one that a stopping instance closes just as
    # a request is sent on it.
    option http-server-close
frontend public
    bind 127.0.0.1:{port}
    default_backend gatehouse
backend gatehouse
    balance roundrobin
    option httpchk GET /health/ready
    default-server check inter 100ms fall 2 rise 1
{servers}",
            socket = socket.display()
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        // -db: in the foreground, so that the child is HAProxy itself.
        let child = Command::new(program)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let haproxy = Self { child, socket, base: format!("http://127.0.0.1:{port}") };
        for server in 0..ports.len() {
            haproxy.wait_for(server, "UP");
        }
        haproxy
    }

    /// `show stat` on the admin socket: one CSV row per server, the backend's totals in the `BACKEND` row.
    fn stats(&self) -> Option<Vec<Vec<String>>> {
        let mut stream = UnixStream::connect(&self.socket).ok()?;
        stream.write_all(b"show stat\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text.lines().map(|line| line.split(',').map(str::to_owned).collect()).collect())
    }

    /// The `column` of the `gatehouse` backend's row for `server`.
    fn stat(&self, server: &str, column: &str) -> Option<String> {
        let rows = self.stats()?;
        let header = rows.first()?;
        let index = header.iter().position(|name| name.trim_start_matches("# ") == column)?;
        let row = rows.iter().find(|row| row.len() > index && row[0] == "gatehouse" && row[1] == server)?;
        Some(row[index].clone())
    }

    /// Waits until HAProxy's checks say `status` (`UP`, `DOWN`) for server number `server`.
    fn wait_for(&self, server: usize, status: &str) {
        let name = format!("gatehouse{server}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stat(&name, "status").as_deref() != Some(status) {
            assert!(Instant::now() < deadline, "HAProxy never saw {name} {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Requests HAProxy sent again after a failed attempt: to the same instance (`wretr`), to the other (`wredis`).
    fn retried(&self) -> (u64, u64) {
        let count = |column| self.stat("BACKEND", column).and_then(|value| value.parse().ok()).unwrap_or(0);
        (count("wretr"), count("wredis"))
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free now, for a listener whose address must be known before it starts: HAProxy's configuration names
/// each instance's, and a restarted instance must come back on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_rolling_restart_behind_haproxy_fails_no_sign_in_and_no_validation() {
    let Some(program) = HaProxy::program() else {
        println!("SKIPPED rolling restart: HAProxy is not installed (apt-get install -y haproxy; scripts/test does)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(gatehouse_testkit::TestDb::new(gatehouse_testkit::Backend::Postgres));
    let entra = runtime.block_on(microsoft::fake_entra());
    let dir = tempfile::tempdir().unwrap();
    // One configuration, so one database and the same secret keys: a sign-in may start on one instance and end
    // on the other, and a session made by one is checked by the other.
    let config = write_config_on(dir.path(), db.url(), &microsoft::load_config(&entra));
    let ports = [free_port(), free_port()];
    let serve = |port: u16| {
        let mut command = gatehouse(dir.path(), &["serve", "--config", &config]);
        command
            .env("GATEHOUSE_SERVER__PUBLIC__ADDRESS", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_SERVER__TIMEOUTS__DRAIN", DRAIN);
        Running::start(command)
    };
    // One after the other: the first migrates the fresh database.
    let mut instances: Vec<Running> = ports.iter().map(|&port| serve(port)).collect();
    let haproxy = HaProxy::start(program, dir.path(), &ports);

    let client = browser();
    let (signins, validations) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    // Two browsers signing in over and over, and two apps validating a session each, all through HAProxy.
    for _ in 0..2 {
        let (browser, base, tally, stopped) = (client.clone(), haproxy.base.clone(), signins.clone(), stop.clone());
        load.spawn_on(
            async move {
                while !stopped.load(Ordering::Relaxed) {
                    tally.count(sign_in(&browser, &base).await.map(drop));
                }
            },
            runtime.handle(),
        );
        let (app, base, tally, stopped) = (client.clone(), haproxy.base.clone(), validations.clone(), stop.clone());
        load.spawn_on(
            async move {
                let session = sign_in(&app, &base).await.expect("a session to validate").session;
                while !stopped.load(Ordering::Relaxed) {
                    let valid = validate(&app, &base, &session).await;
                    tally.count(
                        valid.and_then(|valid| valid.then_some(()).ok_or("a good session called invalid".into())),
                    );
                    // Paced, so that the validations leave the two cores to the sign-ins and the restarts.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            runtime.handle(),
        );
    }

    std::thread::sleep(Duration::from_secs(1));
    let mut restarts = Vec::new();
    for (index, &port) in ports.iter().enumerate() {
        let started = Instant::now();
        // The instance restarted longest ago is first in line: SIGTERM, wait for it to exit, start it again.
        instances.remove(0).stop();
        instances.push(serve(port));
        haproxy.wait_for(index, "UP");
        restarts.push(started.elapsed());
        // Load on both instances again before the next one stops.
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(load.join_all());
    let (retries, redispatches) = haproxy.retried();
    for instance in instances {
        instance.stop();
    }

    let (signin_failures, validation_failures) = (signins.failed(), validations.failed());
    println!(
        "FIGURE rolling restart (2 instances on PostgreSQL behind HAProxy, drain {DRAIN}, 2 browsers signing in and 2 \
         apps validating): {} sign-ins, {} failed; {} validations, {} failed; HAProxy sent {retries} requests again to \
         the same instance and {redispatches} to the other; SIGTERM to back in rotation: {}",
        signins.made.load(Ordering::Relaxed),
        signin_failures.len(),
        validations.made.load(Ordering::Relaxed),
        validation_failures.len(),
        restarts.iter().map(|took| format!("{} ms", took.as_millis())).collect::<Vec<_>>().join(", ")
    );
    // Zero failures out of next to nothing would prove nothing.
    let made = [&signins, &validations].map(|tally| tally.made.load(Ordering::Relaxed));
    assert!(made.iter().all(|&made| made >= 20), "too little load to mean anything: {made:?}");
    assert!(signin_failures.is_empty(), "failed sign-ins: {signin_failures:?}");
    assert!(validation_failures.is_empty(), "failed validations: {validation_failures:?}");
}
