//! A soak: one `gatehouse serve` on PostgreSQL under a fixed rate of sign-ins, validations and logouts for
//! `SOAK_SECS` seconds (60 by default). No request may fail, and the process's resident memory and open
//! files must stay flat after a warm-up, growing no more than 10 %: a leak of either grows with the requests served.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Running, Tally, browser, gatehouse, log_out, microsoft, sign_in, validate, write_config_on};

/// Simulated users, each visiting once per [`VISIT_EVERY`]: 4 sign-ins, 16 validations and 4 logouts a second.
const USERS: usize = 4;
const VISIT_EVERY: Duration = Duration::from_secs(1);
/// Requests a visit makes to Gatehouse: 3 for the sign-in (`/thirdparty/auth`, the callback, `/token`; the fourth
/// goes to the fake Entra ID), 4 validations, 1 logout.
const REQUESTS_PER_VISIT: usize = 8;
/// How far resident memory and open files may grow above their values after the warm-up.
const TOLERANCE: f64 = 0.10;

/// One visit: sign in, validate the session three times as an app would on each page, log out, and see the
/// session refused from then on.
async fn visit(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let session = sign_in(client, base).await?.session;
    for _ in 0..3 {
        if !validate(client, base, &session).await? {
            return Err("a fresh session called invalid".into());
        }
    }
    log_out(client, base, &session).await?;
    match validate(client, base, &session).await? {
        false => Ok(()),
        true => Err("a session still valid after its logout".into()),
    }
}

/// Resident memory (KiB) and open files of process `pid`, from /proc.
fn footprint(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    (rss, std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64)
}

/// Whether no sample grew more than [`TOLERANCE`] above `baseline`; the samples' range, for the figure. Only
/// growth is a leak: what the process gives back (the pool closes database connections idle for 10 minutes, so a
/// long run ends with fewer open files) is not.
fn flat(baseline: u64, samples: impl Iterator<Item = u64> + Clone) -> (bool, u64, u64) {
    let (low, high) = (samples.clone().min().unwrap_or(baseline), samples.max().unwrap_or(baseline));
    (high as f64 <= baseline as f64 * (1.0 + TOLERANCE), low, high)
}

#[test]
#[ignore = "runs for a minute: scripts/test runs it as a step of its own"]
fn a_soak_of_sign_ins_validations_and_logouts_fails_nothing_and_keeps_memory_and_files_flat() {
    let seconds: u64 = std::env::var("SOAK_SECS").map_or(60, |value| value.parse().expect("SOAK_SECS"));
    let duration = Duration::from_secs(seconds);
    // A quarter of the run: every connection pool, cache and buffer has reached its working size.
    let warm_up = duration / 4;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(gatehouse_testkit::TestDb::new(gatehouse_testkit::Backend::Postgres));
    let entra = runtime.block_on(microsoft::fake_entra());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_on(dir.path(), db.url(), &microsoft::load_config(&entra));
    let server = Running::start(gatehouse(dir.path(), &["serve", "--config", &config]));
    let pid = server.child.as_ref().unwrap().id();

    let client = browser();
    let (stop, visits) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let mut users = tokio::task::JoinSet::new();
    for _ in 0..USERS {
        let (client, base, stop, visits) = (client.clone(), server.base.clone(), stop.clone(), visits.clone());
        users.spawn_on(
            async move {
                // A fixed rate: a visit that overruns its slot delays the next one rather than bunching them up.
                let mut every = tokio::time::interval(VISIT_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    visits.count(visit(&client, &base).await);
                }
            },
            runtime.handle(),
        );
    }

    let started = Instant::now();
    let (mut warming, mut samples) = (Vec::new(), Vec::new());
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        let sample = footprint(pid);
        if started.elapsed() < warm_up { warming.push(sample) } else { samples.push(sample) }
    }
    // The footprint after the warm-up: the most of each over its last five seconds, so that a connection open for
    // a moment when one sample was taken does not set the bar.
    let recent = &warming[warming.len().saturating_sub(5)..];
    let baseline = (
        recent.iter().map(|sample| sample.0).max().expect("a warm-up of at least a second"),
        recent.iter().map(|sample| sample.1).max().expect("a warm-up of at least a second"),
    );
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(users.join_all());
    let elapsed = started.elapsed();
    server.stop();

    let failures = visits.failed();
    let visits = visits.made.load(Ordering::Relaxed);
    let (rss_flat, rss_low, rss_high) = flat(baseline.0, samples.iter().map(|sample| sample.0));
    let (files_flat, files_low, files_high) = flat(baseline.1, samples.iter().map(|sample| sample.1));
    println!(
        "FIGURE soak ({} s, PostgreSQL, {USERS} users each visiting every {} s: sign-in, 3 validations, logout, 1 \
         validation): {visits} visits ({visits} sign-ins, {} validations, {visits} logouts; {:.1} requests/s to \
         Gatehouse, {REQUESTS_PER_VISIT} a visit), {} failed; resident memory at the end of the {} s warm-up {} KiB, \
         then {rss_low}..{rss_high} KiB; open files {} then {files_low}..{files_high}",
        elapsed.as_secs(),
        VISIT_EVERY.as_secs(),
        visits * 4,
        (visits * REQUESTS_PER_VISIT) as f64 / elapsed.as_secs_f64(),
        failures.len(),
        warm_up.as_secs(),
        baseline.0,
        baseline.1
    );
    assert!(failures.is_empty(), "failed visits: {failures:?}");
    assert!(rss_flat, "resident memory grew more than 10 % after the warm-up");
    assert!(files_flat, "open files grew more than 10 % after the warm-up");
}
