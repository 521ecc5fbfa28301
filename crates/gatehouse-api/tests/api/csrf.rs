//! Login CSRF: the state-changing routes take JSON only, and browsers may call them only from this server's own
//! origin or an allowed one, so another site's auto-submitting form cannot finish a sign-in in a visitor's browser.

use gatehouse_testkit::{Backend, TestServer, both_backends};
use reqwest::RequestBuilder;
use serde_json::{Value, json};

use crate::{errors::expect_error, thirdparty::APP};

const FLOWS: [&str; 3] = ["/login", "/registration", "/profile"];

async fn server(backend: Backend) -> TestServer {
    TestServer::start(backend, |config| config.server.public.cors.allow_origins = vec![APP.into()]).await
}

fn post(server: &TestServer, path: &str) -> RequestBuilder {
    server.client.post(server.url(path))
}

async fn flow_writes_must_be_json(backend: Backend) {
    let server = server(backend).await;
    for flow in FLOWS {
        let form = post(&server, flow).header("content-type", "text/plain").body("{\"input_data\":{}}\r\n");
        let body = expect_error(form.send().await.unwrap(), 415).await;
        assert_eq!(body["message"], "expected Content-Type: application/json", "{flow}");
    }
    let started: Value = post(&server, "/login").send().await.unwrap().json().await.unwrap();
    assert_eq!(started["name"], "preflight", "curl -X POST: no body, no content type");
    let href = started["actions"]["register_client_capabilities"]["href"].as_str().unwrap();
    let action = json!({"input_data": {"webauthn_available": false}, "csrf_token": started["csrf_token"]}).to_string();
    let as_text = post(&server, href).header("content-type", "text/plain").body(action.clone());
    expect_error(as_text.send().await.unwrap(), 415).await;
    expect_error(post(&server, href).body(action.clone()).send().await.unwrap(), 415).await;
    let as_json = post(&server, href).header("content-type", "application/json; charset=utf-8").body(action);
    let next: Value = as_json.send().await.unwrap().json().await.unwrap();
    assert_eq!(next["name"], "login_init", "the refused requests left the flow as it was: {next}");

    let logout = post(&server, "/logout").header("content-type", "text/plain").body("x=y");
    expect_error(logout.send().await.unwrap(), 415).await;
    let token = post(&server, "/token").header("content-type", "text/plain").body(r#"{"value":"x"}"#);
    expect_error(token.send().await.unwrap(), 415).await;
}

async fn browser_writes_from_other_origins_are_refused(backend: Backend) {
    crate::logs::captured();
    let server = server(backend).await;
    let stranger = format!("https://evil-{}.example.net", uuid::Uuid::new_v4());
    let sibling = "https://blog.example.com";
    let own = server.base_url.clone();
    for flow in FLOWS {
        let from = |origin: &str, site: &str| {
            post(&server, flow).header("origin", origin).header("sec-fetch-site", site).json(&json!({}))
        };
        expect_error(from(&stranger, "cross-site").send().await.unwrap(), 403).await;
        expect_error(from(sibling, "same-site").send().await.unwrap(), 403).await;
        let no_origin = post(&server, flow).header("sec-fetch-site", "cross-site").json(&json!({}));
        expect_error(no_origin.send().await.unwrap(), 403).await;
        // What the flow itself answers (an anonymous `/profile` is a 401 `error` state) when the guard lets it by.
        let unguarded = if flow == "/profile" { 401 } else { 200 };
        assert_eq!(post(&server, flow).json(&json!({})).send().await.unwrap().status(), unguarded, "{flow}: curl");
        assert_eq!(from(APP, "cross-site").send().await.unwrap().status(), unguarded, "{flow}: an allowed origin");
        assert_eq!(from(&own, "same-origin").send().await.unwrap().status(), unguarded, "{flow}: the login page");
        let older_browser = post(&server, flow).header("origin", &own).json(&json!({}));
        assert_eq!(older_browser.send().await.unwrap().status(), unguarded, "{flow}: own origin, no Sec-Fetch-Site");
    }
    let logout = post(&server, "/logout").header("origin", &stranger).header("sec-fetch-site", "cross-site");
    expect_error(logout.send().await.unwrap(), 403).await;
    let read = server.client.get(server.url("/sessions/validate")).header("origin", &stranger);
    assert_eq!(read.send().await.unwrap().status(), 200, "reads are not guarded");

    let warnings: Vec<String> = crate::logs::text()
        .lines()
        .filter(|line| line.contains(&stranger) && line.contains("WARN"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per origin: {warnings:?}");
    assert!(warnings[0].contains("server.public.cors.allow_origins"), "it names the setting: {}", warnings[0]);
}

/// Hanko's wildcard form `https://*.example.com`: every subdomain may call with credentials and write, lookalike
/// hosts may not, in the CORS answers and in the write guard alike.
async fn wildcard_origins_allow_subdomains_only(backend: Backend) {
    let server = TestServer::start(backend, |config| {
        config.server.public.cors.allow_origins = vec!["https://*.example.com".into()];
    })
    .await;
    let preflight = |origin: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let write = |origin: &str| {
        post(&server, "/login").header("origin", origin).header("sec-fetch-site", "cross-site").json(&json!({}))
    };
    for allowed in ["https://app.example.com", "https://a.b.example.com"] {
        let answer = preflight(allowed).send().await.unwrap();
        assert_eq!(answer.headers()["access-control-allow-origin"], allowed);
        assert_eq!(answer.headers()["access-control-allow-credentials"], "true");
        assert_eq!(write(allowed).send().await.unwrap().status(), 200, "{allowed} may write");
    }
    for refused in [
        "https://example.com",
        "https://evil-example.com",
        "http://app.example.com",
        "https://app.example.com.evil.net",
    ] {
        let answer = preflight(refused).send().await.unwrap();
        assert!(answer.headers().get("access-control-allow-origin").is_none(), "{refused}");
        expect_error(write(refused).send().await.unwrap(), 403).await;
    }
}

/// A `<hanko-auth>` page whose origin is not allowed fails in the browser at the CORS preflight; the server says so
/// once per origin, naming the setting, and not for its own origin, an allowed one, or Microsoft's form_post.
async fn refused_preflights_are_logged_once_per_origin(backend: Backend) {
    crate::logs::captured();
    let server = server(backend).await;
    let page = format!("https://app-{}.example.net", uuid::Uuid::new_v4());
    let preflight = |origin: &str, path: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-language")
    };
    let refusal_warnings = || -> Vec<String> {
        let log = crate::logs::text();
        let refusal = "refused a request from a page of another origin";
        log.lines().filter(|line| line.contains("WARN") && line.contains(refusal)).map(str::to_owned).collect()
    };
    for path in ["/login", "/me", "/login"] {
        let answer = preflight(&page, path).send().await.unwrap();
        assert!(!answer.headers().contains_key("access-control-allow-origin"), "{path}: refused");
    }
    let preflighted: Vec<String> = refusal_warnings().into_iter().filter(|line| line.contains(&page)).collect();
    assert_eq!(preflighted.len(), 1, "the preflights alone are logged, once: {preflighted:?}");
    let write = post(&server, "/login").header("origin", &page).header("sec-fetch-site", "cross-site").json(&json!({}));
    expect_error(write.send().await.unwrap(), 403).await;
    let own = server.base_url.clone();
    for origin in [APP, own.as_str()] {
        preflight(origin, "/login").send().await.unwrap();
    }
    let form_post = post(&server, "/thirdparty/callback").header("origin", "https://login.microsoftonline.com");
    form_post.form(&[("state", "x")]).send().await.unwrap();

    let warnings = refusal_warnings();
    let for_page: Vec<&String> = warnings.iter().filter(|line| line.contains(&page)).collect();
    assert_eq!(for_page.len(), 1, "one warning for the page's origin, preflights and writes alike: {warnings:?}");
    assert!(for_page[0].contains("server.public.cors.allow_origins"), "it names the setting: {}", for_page[0]);
    for quiet in [APP, own.as_str(), "login.microsoftonline.com"] {
        assert!(!warnings.iter().any(|line| line.contains(&format!("{quiet}\""))), "{quiet}: {warnings:?}");
    }
}

both_backends!(
    flow_writes_must_be_json,
    browser_writes_from_other_origins_are_refused,
    wildcard_origins_allow_subdomains_only,
    refused_preflights_are_logged_once_per_origin,
);
