//! `signin-load`: complete "Sign in with Microsoft" sign-ins through Hanko's flow API, request for request as a
//! browser running `<hanko-auth>` (@teamhanko/hanko-elements) performs them, from `--concurrency` simulated
//! browsers for `--duration` seconds. Against `fake-entra --distinct-users`, every sign-in is a new user; the run
//! fails if two sign-ins come back as the same user.
//!
//! One sign-in: `POST /login` (`preflight`) → `register_client_capabilities` (`login_init`) → `thirdparty_oauth`
//! with provider `microsoft`, a `redirect_to` and a PKCE verifier, as hanko-elements sends them (`thirdparty`) → the
//! authorize URL at the fake (302 to Gatehouse's callback) → `GET /thirdparty/callback`, with the state cookie if one
//! was set (307 to `redirect_to?hanko_token=…`) → `exchange_token` with the token and the verifier (`success`, and
//! a session JWT in `X-Auth-Token` or a cookie).
//!
//! Prints sign-ins/s and p50/p99 of a complete sign-in; with `--gatehouse-pid`, Gatehouse's own CPU time per
//! sign-in (utime + stime from /proc, so the fake's and this program's work are not counted) and its memory; with
//! `--entra-control`, the calls Gatehouse made to "Microsoft" per sign-in, counted at the fake. Then the same as
//! one JSON line. Exits non-zero, saying why, if any sign-in fails.

use std::{
    collections::HashSet,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use reqwest::{
    Client, StatusCode,
    header::{self, HeaderMap},
    redirect::Policy,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use url::Url;
use uuid::Uuid;

/// Clock ticks per second of the times in `/proc/<pid>/stat`: `USER_HZ`, which Linux fixes at 100 for user space.
const USER_HZ: u64 = 100;

#[derive(Debug, Parser)]
#[command(about = "Complete Microsoft sign-ins through Gatehouse's flow API under load")]
struct Args {
    /// Gatehouse's public base URL (the frontend SDK's `api`).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    base_url: Url,
    /// Where the app lands after signing in; must match `third_party.allowed_redirect_urls` [default: BASE_URL/].
    #[arg(long)]
    redirect_to: Option<Url>,
    /// Sign-ins in flight at once, each in its own simulated browser.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Seconds to keep starting sign-ins; those in flight at the end are finished and counted.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Gatehouse's process id: adds its CPU time per sign-in and its resident memory, read from /proc.
    #[arg(long)]
    gatehouse_pid: Option<u32>,
    /// The fake Entra ID's control URL (`fake-entra --control-port`): adds Gatehouse's calls to "Microsoft" per
    /// sign-in, from the fake's `/stats`.
    #[arg(long)]
    entra_control: Option<Url>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("signin-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<Report> {
    ensure!(args.duration > 0.0 && args.duration.is_finite(), "--duration must be a positive number of seconds");
    let client = Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let base = args.base_url.as_str().trim_end_matches('/').to_owned();
    let redirect_to = args.redirect_to.map_or_else(|| format!("{base}/"), String::from);
    let browser = Arc::new(Browser { client: client.clone(), base, redirect_to });
    let entra = args.entra_control.map(|url| EntraStats::url(&url)).transpose()?;

    let process_before = args.gatehouse_pid.map(ProcessSample::read).transpose()?;
    let entra_before = EntraStats::fetch(&client, entra.as_ref()).await?;
    let started = Instant::now();
    let signins = sign_in_for(browser, args.concurrency, Duration::from_secs_f64(args.duration)).await?;
    let elapsed = started.elapsed();
    let process_after = args.gatehouse_pid.map(ProcessSample::read).transpose()?;
    let entra_after = EntraStats::fetch(&client, entra.as_ref()).await?;

    ensure!(!signins.is_empty(), "no sign-in finished within the run");
    let users: HashSet<&str> = signins.iter().map(|signin| signin.user_id.as_str()).collect();
    ensure!(
        users.len() == signins.len(),
        "{} of {} sign-ins came back as a user already signed in during this run; every sign-in must be a new \
         user: start fake-entra with --distinct-users",
        signins.len() - users.len(),
        signins.len()
    );
    let mut latencies: Vec<Duration> = signins.iter().map(|signin| signin.latency).collect();
    latencies.sort_unstable();
    let count = signins.len() as f64;
    let gatehouse = process_before.zip(process_after).map(|(before, after)| GatehouseFigures {
        cpu_ms_per_signin: (after.cpu - before.cpu).as_secs_f64() * 1000.0 / count,
        rss_mb: mb(after.rss_kib),
        peak_rss_mb: mb(after.peak_rss_kib),
    });
    let microsoft = entra_before.zip(entra_after).map(|(before, after)| {
        let calls = after.since(&before);
        MicrosoftCalls { per_signin: calls.total() as f64 / count, calls }
    });
    Ok(Report {
        signins: signins.len(),
        concurrency: args.concurrency,
        seconds: elapsed.as_secs_f64(),
        signins_per_s: count / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        p99_ms: percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        gatehouse,
        microsoft,
    })
}

/// One finished sign-in.
struct SignIn {
    latency: Duration,
    user_id: String,
}

/// Runs `concurrency` browsers that sign in one after another until `duration` is over. The first failure ends
/// the run (dropping the set aborts the other browsers).
async fn sign_in_for(browser: Arc<Browser>, concurrency: u16, duration: Duration) -> Result<Vec<SignIn>> {
    let deadline = Instant::now() + duration;
    let mut browsers = JoinSet::new();
    for _ in 0..concurrency {
        let browser = browser.clone();
        browsers.spawn(async move {
            let mut done = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let user_id = browser.sign_in().await.context("a sign-in failed")?;
                done.push(SignIn { latency: started.elapsed(), user_id });
            }
            anyhow::Ok(done)
        });
    }
    let mut signins = Vec::new();
    while let Some(done) = browsers.join_next().await {
        signins.extend(done.context("a simulated browser panicked")??);
    }
    Ok(signins)
}

/// What every simulated browser shares: one HTTP client, whose kept-alive connections stand in for the browsers'
/// own. Cookies are carried by hand, per sign-in.
struct Browser {
    client: Client,
    /// Gatehouse's base URL without a trailing slash; action `href`s are appended to it, as the SDK does.
    base: String,
    redirect_to: String,
}

impl Browser {
    /// One complete sign-in; returns the signed-in user's id.
    async fn sign_in(&self) -> Result<String> {
        // hanko-elements makes a fresh 64-character PKCE verifier per sign-in; the hex digits of two random UUIDs
        // are 64 characters of the allowed alphabet with 244 random bits.
        let verifier = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let (preflight, _) = self.flow("/login", None, "preflight").await.context("POST /login")?;
        // What a desktop browser without a platform authenticator reports.
        let capabilities = json!({
            "webauthn_available": true,
            "webauthn_conditional_mediation_available": true,
            "webauthn_platform_authenticator_available": false,
        });
        let (login, _) = self.act(&preflight, "register_client_capabilities", capabilities, "login_init").await?;
        let oauth = json!({ "provider": "microsoft", "redirect_to": self.redirect_to, "code_verifier": verifier });
        let (thirdparty, started) = self.act(&login, "thirdparty_oauth", oauth, "thirdparty").await?;
        let authorize = thirdparty["payload"]["redirect_url"].as_str().context("thirdparty: no redirect_url")?;
        let callback =
            self.hop(authorize, None, StatusCode::FOUND).await.context("GET the authorize URL at the fake Entra ID")?;
        let landing = self
            .hop(&callback, cookies(&started), StatusCode::TEMPORARY_REDIRECT)
            .await
            .context("GET /thirdparty/callback")?;
        let token = one_time_token(&landing).context("GET /thirdparty/callback")?;
        let exchange = json!({ "token": token, "code_verifier": verifier });
        let (success, delivered) = self.act(&thirdparty, "exchange_token", exchange, "success").await?;
        ensure!(
            session_jwt(&delivered).is_some(),
            "exchange_token: no session JWT, neither in X-Auth-Token nor in a cookie"
        );
        success["payload"]["user"]["id"].as_str().map(str::to_owned).context("exchange_token: no user id in success")
    }

    /// Runs `action` of `state` with `inputs` as the SDK does (its `href`, the state's CSRF token) and checks that
    /// it leads to state `expected`.
    async fn act(&self, state: &Value, action: &str, inputs: Value, expected: &str) -> Result<(Value, HeaderMap)> {
        let href = state["actions"][action]["href"].as_str().with_context(|| format!("{action} is not offered"))?;
        let body = json!({ "input_data": inputs, "csrf_token": state["csrf_token"] });
        self.flow(href, Some(body), expected).await.with_context(|| action.to_owned())
    }

    /// POSTs to the flow API; the answer must be a 200 in state `expected`. Returns the state and the headers.
    async fn flow(&self, href: &str, body: Option<Value>, expected: &str) -> Result<(Value, HeaderMap)> {
        let mut request =
            self.client.post(format!("{}{href}", self.base)).header(header::CONTENT_TYPE, "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let (status, headers) = (response.status(), response.headers().clone());
        let state: Value = response.json().await.with_context(|| format!("HTTP {status} without a flow state"))?;
        let name = state["name"].as_str().unwrap_or_default();
        if status != StatusCode::OK || name != expected {
            // The error alone: the rest of the answer holds a CSRF token.
            bail!("HTTP {status}, state {name:?} instead of {expected:?}, error {}", state["error"]);
        }
        Ok((state, headers))
    }

    /// GETs `url` without following the redirect it must answer with `expected`; returns the `Location`.
    async fn hop(&self, url: &str, cookie: Option<String>, expected: StatusCode) -> Result<String> {
        let mut request = self.client.get(url);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await?;
        let status = response.status();
        ensure!(status == expected, "HTTP {status} instead of {expected}");
        let location = response.headers().get(header::LOCATION).and_then(|value| value.to_str().ok());
        location.map(str::to_owned).context("no Location header")
    }
}

/// The `name=value` pairs of an answer's `Set-Cookie` headers, as a `Cookie` header.
fn cookies(headers: &HeaderMap) -> Option<String> {
    let pairs: Vec<&str> =
        headers.get_all(header::SET_COOKIE).iter().filter_map(|value| value.to_str().ok()?.split(';').next()).collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// The `hanko_token` on the URL Gatehouse sent the browser back to, or the `error` it put there instead.
fn one_time_token(landing: &str) -> Result<String> {
    // Never the URL itself in a message: it may hold the token.
    let url = Url::parse(landing).context("redirected to something that is not a URL")?;
    let param = |name: &str| url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
    if let Some(token) = param("hanko_token") {
        return Ok(token);
    }
    bail!(
        "no hanko_token on the landing URL: error {:?}, {:?}",
        param("error").unwrap_or_default(),
        param("error_description").unwrap_or_default()
    )
}

/// The session JWT of `exchange_token`'s answer: `X-Auth-Token`, or a cookie holding a JWT (the cookie's name is
/// configurable, its value's shape is not).
fn session_jwt(headers: &HeaderMap) -> Option<&str> {
    let is_jwt = |value: &str| value.starts_with("eyJ") && value.split('.').count() == 3;
    let header = headers.get("x-auth-token").and_then(|value| value.to_str().ok());
    let cookie = || {
        headers.get_all(header::SET_COOKIE).iter().find_map(|value| {
            let (_, value) = value.to_str().ok()?.split(';').next()?.split_once('=')?;
            is_jwt(value).then_some(value)
        })
    };
    header.filter(|value| is_jwt(value)).or_else(cookie)
}

/// The nearest-rank percentile `p` (0 to 1) of sorted, non-empty `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Gatehouse's process counters at one moment.
struct ProcessSample {
    /// User plus system CPU time of all its threads so far.
    cpu: Duration,
    rss_kib: u64,
    /// The most resident memory it has had (`VmHWM`).
    peak_rss_kib: u64,
}

impl ProcessSample {
    fn read(pid: u32) -> Result<Self> {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}")).with_context(|| format!("read /proc/{pid}/{file}"))
        };
        let status = read("status")?;
        Ok(Self {
            cpu: cpu_time(&read("stat")?)?,
            rss_kib: status_kib(&status, "VmRSS")?,
            peak_rss_kib: status_kib(&status, "VmHWM")?,
        })
    }
}

/// utime + stime of a `/proc/<pid>/stat` line: fields 14 and 15, counted after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
fn cpu_time(stat: &str) -> Result<Duration> {
    let (_, after_name) = stat.rsplit_once(')').context("/proc/<pid>/stat without a command name")?;
    // After the name comes field 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| -> Result<u64> {
        let value = fields.get(field - 3).with_context(|| format!("/proc/<pid>/stat has no field {field}"))?;
        value.parse().with_context(|| format!("/proc/<pid>/stat field {field} is {value:?}"))
    };
    Ok(Duration::from_millis((ticks(14)? + ticks(15)?) * 1000 / USER_HZ))
}

/// A `kB` line of `/proc/<pid>/status`, such as `VmRSS:     16384 kB`.
fn status_kib(status: &str, key: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .with_context(|| format!("/proc/<pid>/status has no {key}"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("/proc/<pid>/status {key} is {line:?}"))
}

/// The fake Entra ID's request counters (`GET /stats` on its control port) for the endpoints Gatehouse calls;
/// the authorize endpoint is the browser's, not Gatehouse's.
#[derive(Debug, Deserialize, Serialize)]
struct EntraStats {
    token_requests: u64,
    jwks_requests: u64,
    discovery_requests: u64,
    /// Microsoft Graph reads (a group overage, the tenant's name, custom claims).
    #[serde(default)]
    graph_requests: u64,
}

impl EntraStats {
    fn url(control: &Url) -> Result<Url> {
        control.join("/stats").context("--entra-control is not a base URL")
    }

    /// The counters now, when there is a control URL to read them from.
    async fn fetch(client: &Client, url: Option<&Url>) -> Result<Option<Self>> {
        let Some(url) = url else { return Ok(None) };
        let response = client.get(url.clone()).send().await.with_context(|| format!("GET {url}"))?;
        let stats = response.error_for_status()?.json().await;
        stats.map(Some).with_context(|| format!("GET {url}: not the fake's counters"))
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            token_requests: self.token_requests - before.token_requests,
            jwks_requests: self.jwks_requests - before.jwks_requests,
            discovery_requests: self.discovery_requests - before.discovery_requests,
            graph_requests: self.graph_requests - before.graph_requests,
        }
    }

    fn total(&self) -> u64 {
        self.token_requests + self.jwks_requests + self.discovery_requests + self.graph_requests
    }
}

#[derive(Debug, Serialize)]
struct GatehouseFigures {
    cpu_ms_per_signin: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
struct MicrosoftCalls {
    per_signin: f64,
    calls: EntraStats,
}

#[derive(Debug, Serialize)]
struct Report {
    signins: usize,
    concurrency: u16,
    seconds: f64,
    signins_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    gatehouse: Option<GatehouseFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    microsoft: Option<MicrosoftCalls>,
}

impl Report {
    /// Human-readable lines, then the report as one JSON line for scripts.
    fn print(&self) {
        println!(
            "{} sign-ins in {:.1} s, {} at a time, each a new user: {:.1} sign-ins/s, p50 {:.1} ms, p99 {:.1} ms",
            self.signins, self.seconds, self.concurrency, self.signins_per_s, self.p50_ms, self.p99_ms
        );
        if let Some(gatehouse) = &self.gatehouse {
            println!(
                "Gatehouse: {:.2} ms CPU per sign-in; resident {:.1} MB now, {:.1} MB at peak",
                gatehouse.cpu_ms_per_signin, gatehouse.rss_mb, gatehouse.peak_rss_mb
            );
        }
        if let Some(microsoft) = &self.microsoft {
            let calls = &microsoft.calls;
            println!(
                "calls to Microsoft: {:.3} per sign-in (token {}, JWKS {}, discovery {}, Graph {})",
                microsoft.per_signin,
                calls.token_requests,
                calls.jwks_requests,
                calls.discovery_requests,
                calls.graph_requests
            );
        }
        println!("{}", serde_json::to_string(self).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn cpu_time_reads_utime_and_stime_after_an_awkward_name() {
        let stat = "4242 (gate house) (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 3 0 1000 1 2";
        assert_eq!(cpu_time(stat).unwrap(), Duration::from_millis(2870));
        assert!(cpu_time("4242 (short) S 1").is_err());
    }

    #[test]
    fn status_lines_in_kib() {
        let status = "Name:\tgatehouse\nVmHWM:\t   20480 kB\nVmRSS:\t   16384 kB\nVmRSSx:\t1 kB\n";
        assert_eq!((status_kib(status, "VmRSS").unwrap(), status_kib(status, "VmHWM").unwrap()), (16384, 20480));
        assert!(status_kib(status, "VmSwap").is_err());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted[..1], 0.99), Duration::from_millis(1));
    }

    #[test]
    fn the_landing_url_carries_a_token_or_an_error() {
        assert_eq!(one_time_token("http://app.test/?x=1&hanko_token=abc").unwrap(), "abc");
        let error = one_time_token("http://app.test/?error=user_conflict&error_description=taken").unwrap_err();
        assert!(error.to_string().contains("user_conflict"), "{error}");
    }

    #[test]
    fn cookies_and_session_jwts_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!((cookies(&headers), session_jwt(&headers)), (None, None));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("hanko_thirdparty_state=s1; Path=/; HttpOnly"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("hanko=eyJh.eyJi.c2ln; Max-Age=60"));
        assert_eq!(cookies(&headers).as_deref(), Some("hanko_thirdparty_state=s1; hanko=eyJh.eyJi.c2ln"));
        assert_eq!(session_jwt(&headers), Some("eyJh.eyJi.c2ln"));
        headers.insert("x-auth-token", HeaderValue::from_static("eyJx.eyJy.eg"));
        assert_eq!(session_jwt(&headers), Some("eyJx.eyJy.eg"));
    }
}
