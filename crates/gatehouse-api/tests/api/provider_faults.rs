//! Microsoft failing during sign-ins, with the fake Entra ID behind a fault proxy: the token endpoint down,
//! partitioned, slow past the timeout, answering garbage or 5xx; the keys endpoint down. Every failed sign-in ends
//! at the app's error URL with a precise `error`, in bounded time, with an audit row and a log line for the
//! operator; a keys outage does not stop sign-ins while the keys are cached.
//!
//! Each scenario prints a `FIGURE` line; `scripts/faults` collects them for `RELIABILITY.md`.

use std::time::{Duration, Instant};

use gatehouse_testkit::{Backend, FaultProxy, fake_entra::FakeEntra};
use serde_json::json;
use url::Url;

use crate::{
    logs,
    thirdparty::{APP, Setup, audit_kinds, entra_options, error_of, query},
};

/// The provider call timeout the test configuration sets (`third_party.request_timeout`).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(2);

async fn setup() -> (Setup, FaultProxy) {
    let (entra, proxy) = FakeEntra::start_behind_proxy(entra_options(Vec::new())).await;
    (Setup::with_entra(Backend::Sqlite, entra, |_| {}).await, proxy)
}

/// A sign-in in which `fault` strikes after the user is back from Microsoft, while Gatehouse redeems the code;
/// where the browser lands and how long the callback took. The network is restored afterwards.
async fn sign_in_with_fault(
    setup: &Setup,
    proxy: &FaultProxy,
    fault: impl FnOnce(&FaultProxy, &FakeEntra),
) -> (Url, Duration) {
    let mut browser = setup.browser();
    let authorize = browser.start(&format!("{APP}/")).await;
    let callback = browser.at_provider(&authorize).await;
    fault(proxy, &setup.entra);
    let started = Instant::now();
    let landing = browser.callback(&callback).await;
    let took = started.elapsed();
    proxy.restore();
    (landing, took)
}

fn failed_sign_ins(kinds: &[String]) -> usize {
    kinds.iter().filter(|kind| *kind == "thirdparty_signin_signup_failed").count()
}

/// The messages of the log lines that name `needle`, written since `from` bytes of the log.
fn log_lines(from: usize, needle: &str) -> Vec<String> {
    let message =
        |line: &str| line.split_once("gatehouse_app::thirdparty: ").map_or(line, |(_, message)| message).to_owned();
    logs::text()[from..].lines().filter(|line| line.contains(needle)).map(message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_ends_each_sign_in_at_the_error_url_in_bounded_time() {
    logs::captured();
    type Fault = fn(&FaultProxy, &FakeEntra);
    // Each fault, and what the log line must say about it.
    let scenarios: [(&str, Fault, &str); 5] = [
        // Reset on connect, or a kept-alive connection found closed: either way a cause follows the bare text.
        ("token endpoint down (connections refused)", |proxy, _| proxy.cut(), "error sending request: "),
        ("token endpoint partitioned (no answer)", |proxy, _| proxy.blackhole(), "timed out"),
        (
            "token endpoint slow past the timeout (1 byte / 100 ms)",
            |proxy, _| proxy.slow_drip(1, Duration::from_millis(100)),
            "timed out",
        ),
        (
            "token endpoint answers garbage (200, not a token response)",
            |_, entra| entra.fail_next_token(200, json!("<html>Service Unavailable</html>")),
            "error decoding response body",
        ),
        (
            "token endpoint answers 503",
            |_, entra| entra.fail_next_token(503, json!({ "error": "temporarily_unavailable" })),
            "(HTTP 503)",
        ),
    ];
    for (name, fault, cause) in scenarios {
        // A server of its own per scenario: one client's anonymous failures of a kind share one audit row per
        // window, and each scenario must show its own.
        let (setup, proxy) = setup().await;
        let log_from = logs::text().len();
        let (landing, took) = sign_in_with_fault(&setup, &proxy, fault).await;
        assert!(landing.as_str().starts_with(&format!("{APP}/?")), "{name}: {landing}");
        assert_eq!(error_of(&landing), ("server_error".into(), "an internal error has occurred".into()), "{name}");
        assert!(took < PROVIDER_TIMEOUT + Duration::from_secs(2), "{name}: the callback took {took:?}");
        assert_eq!(failed_sign_ins(&audit_kinds(&setup.server).await), 1, "{name}: one audit row");
        let lines = log_lines(log_from, "code redemption failed");
        let line = lines.iter().find(|line| line.contains(cause));
        let line = line.unwrap_or_else(|| panic!("{name}: no log line says {cause:?}: {lines:?}"));
        println!("FIGURE {name}: error=server_error after {} ms; log: {}", took.as_millis(), line.trim());
        let landing = setup.browser().sign_in(&format!("{APP}/")).await;
        assert!(query(&landing, "hanko_token").is_some(), "{name}: sign-ins work again once Microsoft does");
        assert_eq!(setup.server.store.count_users().await.unwrap(), 1, "{name}: only the last made a user");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_outage_spares_sign_ins_with_cached_keys_and_refuses_new_keys_cleanly() {
    logs::captured();
    let (setup, _proxy) = setup().await;
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "{landing}");

    setup.entra.set_jwks_down(true);
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    assert!(query(&landing, "hanko_token").is_some(), "cached keys carry sign-ins through a keys outage: {landing}");

    // Microsoft rolls its keys over during the outage: a token signed with a key Gatehouse has never seen.
    setup.entra.rotate_keys();
    let log_from = logs::text().len();
    let started = Instant::now();
    let landing = setup.browser().sign_in(&format!("{APP}/")).await;
    let took = started.elapsed();
    assert_eq!(error_of(&landing), ("server_error".into(), "an internal error has occurred".into()), "{landing}");
    assert!(took < PROVIDER_TIMEOUT + Duration::from_secs(2), "took {took:?}");
    assert_eq!(failed_sign_ins(&audit_kinds(&setup.server).await), 1);
    let lines = log_lines(log_from, "ID token refused");
    assert!(!lines.is_empty(), "no log line says why");
    println!(
        "FIGURE keys endpoint down, keys cached: sign-in succeeded; token signed with a new key: error=server_error \
         after {} ms; log: {}",
        took.as_millis(),
        lines[0].trim()
    );
}
