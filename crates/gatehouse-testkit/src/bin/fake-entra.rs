//! `fake-entra`: a fake Microsoft Entra ID on loopback, for trying Gatehouse's "Sign in with Microsoft" by hand
//! without an Azure tenant. Every sign-in is the same user (with the same `sub` and `oid` across restarts), consent
//! is automatic, redirect URIs are not checked. It listens on 127.0.0.1 only, and Gatehouse accepts a plain-http
//! provider only while its own public listener is on loopback too.
//!
//! `cargo run -p gatehouse-testkit --bin fake-entra -- [--port 9999] [--client-id ID] [--client-secret SECRET]
//! [--email megan@contoso.com] [--xms-edov true|false|absent] [--distinct-users] [--control-port PORT]`
//! (`--xms-edov` is `true` unless given: the user's tenant verified the address's domain.)
//!
//! `--distinct-users` makes every sign-in a new person instead (new `sub` and `oid`, and a new address made from
//! `--email`: `megan+<random>@contoso.com`), as a load test of sign-ups needs. `--groups N` makes every person a
//! member of N groups: more than 200 is a group overage, served by the fake's Microsoft Graph.
//!
//! With `--control-port`, a second loopback listener lets a test script steer the next sign-in (the browser
//! suite does): `POST /next-user {"email", "xms_edov"? (default `true`, `null` leaves it out), "upn"?, "roles"?}`,
//! `POST /fail-next-authorize {"error", "error_description"}`, `GET /stats` (requests per endpoint so far).

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
};

use gatehouse_testkit::fake_entra::{FakeEntra, FakeEntraOptions, FakeUser};
use serde_json::Value;
use uuid::Uuid;

const USAGE: &str = "usage: fake-entra [--port 9999] [--client-id ID] [--client-secret SECRET] \
                     [--email megan@contoso.com] [--xms-edov true|false|absent] [--distinct-users] \
                     [--groups N] [--control-port PORT]";

#[derive(Debug)]
struct Args {
    port: u16,
    client_id: String,
    client_secret: String,
    email: String,
    xms_edov: Option<bool>,
    distinct_users: bool,
    groups: usize,
    control_port: Option<u16>,
}

/// Flags by hand: the testkit has no argument-parsing dependency, and seven flags need none.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 9999,
        client_id: "gatehouse-dev-client".into(),
        client_secret: "gatehouse-dev-secret".into(),
        email: "megan@contoso.com".into(),
        xms_edov: Some(true),
        distinct_users: false,
        groups: 0,
        control_port: None,
    };
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let value = value()?;
                parsed.port = value.parse().map_err(|_| format!("--port: {value:?} is not a port number"))?;
            }
            "--control-port" => {
                let value = value()?;
                parsed.control_port =
                    Some(value.parse().map_err(|_| format!("--control-port: {value:?} is not a port number"))?);
            }
            "--client-id" => parsed.client_id = value()?,
            "--client-secret" => parsed.client_secret = value()?,
            "--email" => parsed.email = value()?,
            "--distinct-users" => parsed.distinct_users = true,
            "--groups" => {
                let value = value()?;
                parsed.groups = value.parse().map_err(|_| format!("--groups: {value:?} is not a number"))?;
            }
            "--xms-edov" => {
                parsed.xms_edov = match value()?.as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    "absent" => None,
                    other => return Err(format!("--xms-edov: {other:?} is not true, false or absent")),
                }
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(parsed)
}

/// A YAML double-quoted scalar: JSON string syntax is valid YAML, and it escapes whatever the value holds.
fn yaml_string(value: &str) -> String {
    Value::from(value).to_string()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fake-entra: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let options = FakeEntraOptions {
        client_id: args.client_id.clone(),
        client_secrets: vec![args.client_secret.clone()],
        redirect_uris: Vec::new(),
        certificates: Vec::new(),
    };
    let fake = match FakeEntra::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)), options).await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("fake-entra: cannot listen on 127.0.0.1:{}: {error}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let xms_edov = args.xms_edov.map(Value::Bool);
    let groups: Vec<String> = (0..args.groups)
        .map(|n| Uuid::from_u128(0x6000_0000_0000_4000_8000_0000_0000_0000 + n as u128).to_string())
        .collect();
    let make_user = move |user: FakeUser| FakeUser { xms_edov: xms_edov.clone(), groups: groups.clone(), ..user };
    let edov = args.xms_edov.map_or("absent".to_owned(), |edov| edov.to_string());
    println!("# DEMO ONLY: a fake Microsoft Entra ID on {} (loopback only; Ctrl-C stops it).", fake.base_url());
    if args.distinct_users {
        let (local, domain) = args.email.split_once('@').unwrap_or((args.email.as_str(), "contoso.com"));
        println!("# Every sign-in is a new person at {domain} (xms_edov {edov}).");
        let (local, domain) = (local.to_owned(), domain.to_owned());
        // Random rather than counted, so a restarted fake never repeats a person a database already holds.
        fake.set_user_factory(move || {
            make_user(FakeUser::new(format!("{local}+{}@{domain}", Uuid::new_v4().simple())))
        });
    } else {
        // Stable ids: after a restart of the fake, the same person still reaches the same account.
        let user = make_user(FakeUser::stable(args.email.as_str()));
        println!("# Every sign-in is {} (tid {}, oid {}, xms_edov {edov}).", args.email, user.tid, user.oid);
        fake.set_default_user(user);
    }
    println!("# Add to Gatehouse's configuration (third_party.redirect_url etc. as usual):");
    println!("third_party:");
    println!("  providers:");
    println!("    microsoft:");
    println!("      enabled: true");
    println!("      client_id: {}", yaml_string(&args.client_id));
    println!("      secret: {}", yaml_string(&args.client_secret));
    println!("      cloud_instance: {}", yaml_string(&fake.base_url()));
    println!("      tenant: common");

    if let Some(port) = args.control_port {
        match tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
            Ok(listener) => {
                println!("# Control endpoint on http://127.0.0.1:{port}");
                tokio::spawn(async move {
                    let _ = axum::serve(listener, control(fake.clone())).await;
                });
            }
            Err(error) => {
                eprintln!("fake-entra: cannot listen on 127.0.0.1:{port}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }

    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("fake-entra: cannot wait for Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[derive(serde::Deserialize)]
struct NextUser {
    email: String,
    /// `null` leaves the claim out.
    #[serde(default = "verified_domain")]
    xms_edov: Value,
    upn: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

fn verified_domain() -> Value {
    Value::Bool(true)
}

#[derive(serde::Deserialize)]
struct FailAuthorize {
    error: String,
    error_description: String,
}

/// Test-script control of the fake, on its own port so the Microsoft-shaped surface stays as Microsoft's.
fn control(fake: FakeEntra) -> axum::Router {
    use axum::{
        Json,
        extract::State,
        routing::{get, post},
    };
    axum::Router::new()
        .route(
            "/next-user",
            post(|State(fake): State<FakeEntra>, Json(next): Json<NextUser>| async move {
                let mut user = FakeUser::new(next.email.as_str());
                user.xms_edov = (!next.xms_edov.is_null()).then_some(next.xms_edov);
                user.upn = next.upn;
                fake.queue_user(user.with_roles(next.roles));
                Json(serde_json::json!({ "queued": true }))
            }),
        )
        .route(
            "/fail-next-authorize",
            post(|State(fake): State<FakeEntra>, Json(fail): Json<FailAuthorize>| async move {
                fake.fail_next_authorize(&fail.error, &fail.error_description);
                Json(serde_json::json!({ "armed": true }))
            }),
        )
        .route(
            "/stats",
            get(|State(fake): State<FakeEntra>| async move {
                Json(serde_json::json!({
                    "authorize_requests": fake.authorize_requests(),
                    "token_requests": fake.token_requests(),
                    "jwks_requests": fake.jwks_requests(),
                    "discovery_requests": fake.discovery_requests(),
                    "graph_requests": fake.graph_requests(),
                }))
            }),
        )
        .with_state(fake)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn flags_and_defaults() {
        let args = parse(&[]).expect("defaults");
        assert_eq!((args.port, args.client_id.as_str(), args.xms_edov), (9999, "gatehouse-dev-client", Some(true)));
        let args = parse(&["--port", "0", "--email", "a@b.c", "--xms-edov", "false"]).expect("flags");
        assert_eq!((args.port, args.email.as_str(), args.xms_edov), (0, "a@b.c", Some(false)));
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--xms-edov", "1"]).is_err());
        assert!(parse(&["--nope", "1"]).is_err());
        assert!(!parse(&[]).expect("defaults").distinct_users);
        let args = parse(&["--distinct-users", "--port", "1"]).expect("a flag without a value");
        assert_eq!((args.distinct_users, args.port), (true, 1));
        assert_eq!(parse(&["--groups", "250"]).expect("groups").groups, 250);
        assert!(parse(&["--groups", "many"]).is_err());
    }
}
