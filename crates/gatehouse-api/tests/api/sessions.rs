use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_app::tasks::TaskIntervals;
use gatehouse_core::{clock::Clock, session::SessionClaims};
use gatehouse_store::AuditLogFilter;
use gatehouse_testkit::{Backend, TestServer, both_backends, test_config, test_task_intervals};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

pub async fn validate(server: &TestServer, token: &str) -> Value {
    let response = server.client.get(server.url("/sessions/validate")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "validate always answers 200");
    response.json().await.unwrap()
}

async fn is_valid(server: &TestServer, token: &str) -> bool {
    validate(server, token).await["is_valid"] == json!(true)
}

pub fn split(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (decode(), decode())
}

async fn a_valid_session_validates_with_hankos_shape(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("Megan@Contoso.com").await;
    let token = server.issue_session(user).await;
    let body = validate(&server, &token).await;
    assert_eq!(body["is_valid"], true);
    assert_eq!(body["user_id"], json!(user));
    let claims = &body["claims"];
    assert_eq!(claims["subject"], json!(user));
    assert_eq!(claims["audience"], json!(["localhost"]));
    assert_eq!(claims["email"], json!({"address": "megan@contoso.com", "is_primary": true, "is_verified": true}));
    assert_eq!(claims["amr"], json!(["ext:microsoft"]));
    assert!(claims["expiration"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC: {claims}");
    assert_eq!(body["expiration_time"], claims["expiration"]);
    let (header, payload) = split(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(payload["session_id"], claims["session_id"]);
    assert_eq!(payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(), 12 * 3600);

    let cookie = server
        .client
        .get(server.url("/sessions/validate"))
        .header("cookie", format!("other=1; hanko={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.json::<Value>().await.unwrap()["is_valid"], true, "the session cookie is accepted");
    let none: Value = server.client.get(server.url("/sessions/validate")).send().await.unwrap().json().await.unwrap();
    assert_eq!(none, json!({"is_valid": false}));

    let posted: Value = server
        .client
        .post(server.url("/sessions/validate"))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["is_valid"], true);
}

async fn forged_and_broken_tokens_are_invalid(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("a@example.com").await;
    let token = server.issue_session(user).await;
    let (header, payload) = split(&token);
    let signature = token.rsplit('.').next().unwrap();
    let b64 = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());

    let mut other_user = payload.clone();
    other_user["sub"] = json!(Uuid::new_v4());
    assert!(
        !is_valid(&server, &format!("{}.{}.{signature}", b64(&header), b64(&other_user))).await,
        "tampered payload"
    );
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert!(!is_valid(&server, std::str::from_utf8(&flipped).unwrap()).await, "tampered signature");

    let none_header = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    assert!(!is_valid(&server, &format!("{}.{}.", b64(&none_header), b64(&payload))).await, "alg none");

    // HS256 keyed with the public key (the classic algorithm confusion).
    let jwks: Value = server.get_json("/.well-known/jwks.json", None).await;
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    for secret in [jwks["keys"][0].to_string(), jwks["keys"][0]["n"].as_str().unwrap().to_owned()] {
        let confused =
            jsonwebtoken::encode(&hs_header, &payload, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
        assert!(!is_valid(&server, &confused).await, "HS256 confusion");
    }

    let now = server.clock.now().as_secs();
    let signed = |claims: SessionClaims| {
        let keys = server.state.keys();
        async move { keys.sign(&claims).await.unwrap() }
    };
    let base: SessionClaims = serde_json::from_value(payload.clone()).unwrap();
    let expired = SessionClaims { iat: now - 120, exp: now - 60, ..base.clone() };
    assert!(!is_valid(&server, &signed(expired).await).await, "expired");
    let wrong_audience = SessionClaims { aud: vec!["someone-else".into()], ..base.clone() };
    assert!(!is_valid(&server, &signed(wrong_audience).await).await, "wrong audience");
    let unknown_session = SessionClaims { session_id: Uuid::new_v4().into(), ..base.clone() };
    assert!(!is_valid(&server, &signed(unknown_session).await).await, "no session row");
    let other_subject = SessionClaims { sub: Uuid::new_v4().into(), ..base.clone() };
    assert!(!is_valid(&server, &signed(other_subject).await).await, "session row of another user");
    for garbage in ["", "x", "a.b.c", "....", &"A".repeat(10_000)] {
        assert!(!is_valid(&server, garbage).await, "garbage {garbage:.20}");
    }
    assert!(is_valid(&server, &token).await, "the original still validates");
}

async fn logout_invalidates_immediately(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("a@example.com").await;
    let token = server.issue_session(user).await;
    let response = server.client.post(server.url("/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("hanko=;") && cookie.contains("Max-Age=0"), "{cookie}");
    assert!(!is_valid(&server, &token).await);
    let again = server.client.post(server.url("/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status(), 401);
    let rows = server
        .store
        .list_audit_logs(&AuditLogFilter { kind: Some("user_logged_out".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor_user_id, Some(user));
    assert_eq!(rows[0].source_ip.as_deref(), Some("127.0.0.1"));
}

async fn the_session_limit_drops_the_oldest(backend: Backend) {
    let server = TestServer::start(backend, |config| config.session.limit = 2).await;
    let user = server.create_user("a@example.com").await;
    let first = server.issue_session(user).await;
    server.clock.advance(Duration::from_millis(5));
    let second = server.issue_session(user).await;
    server.clock.advance(Duration::from_millis(5));
    let third = server.issue_session(user).await;
    assert!(!is_valid(&server, &first).await, "the oldest session was dropped");
    assert!(is_valid(&server, &second).await && is_valid(&server, &third).await);
    let other = server.create_user("b@example.com").await;
    let others = server.issue_session(other).await;
    assert!(is_valid(&server, &others).await && is_valid(&server, &second).await, "limits are per user");
}

async fn key_rotation_keeps_old_tokens_valid(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("a@example.com").await;
    let before = server.issue_session(user).await;
    server.clock.advance(Duration::from_secs(1));
    let new_kid = server.state.keys().rotate().await.unwrap();
    let jwks: Value = server.get_json("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert_eq!(kids[0], new_kid);
    assert!(is_valid(&server, &before).await, "a token signed before the rotation still verifies");
    let after = server.issue_session(user).await;
    assert_eq!(split(&after).0["kid"], json!(new_kid), "the new key signs");
    assert!(is_valid(&server, &after).await);
}

async fn me_returns_the_user_or_401(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("Megan@Contoso.com").await;
    let token = server.issue_session(user).await;
    let me = server.me(&token).await;
    assert_eq!(me["id"], json!(user));
    assert_eq!(me["user_id"], json!(user));
    assert_eq!(me["emails"][0]["address"], "megan@contoso.com");
    assert_eq!(me["emails"][0]["is_primary"], true);
    assert_eq!(me["identities"], json!([]));
    assert_eq!(me["mfa_config"]["totp_enabled"], false);
    let anonymous = server.client.get(server.url("/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<Value>().await.unwrap(), json!({"code": 401, "message": "Unauthorized"}));
    server.store.delete_user(user).await.unwrap();
    let deleted = server.client.get(server.url("/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deleted.status(), 401, "deleting the user deletes their sessions");
}

async fn restart_keeps_users_sessions_and_keys(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("a@example.com").await;
    let token = server.issue_session(user).await;
    let jwks: Value = server.get_json("/.well-known/jwks.json", None).await;
    let db = server.stop().await.unwrap();
    let restarted = TestServer::start_with(test_config(&db)).await;
    let again: Value = restarted.get_json("/.well-known/jwks.json", None).await;
    assert_eq!(jwks, again, "the signing key survived the restart");
    assert!(is_valid(&restarted, &token).await);
    let me = restarted.client.get(restarted.url("/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    restarted.stop().await;
}

async fn a_second_instance_sees_rotations_and_logouts(backend: Backend) {
    let a = TestServer::start(backend, |_| {}).await;
    let config = a.state.config().clone();
    // B reloads keys only when a token makes it: its periodic reloader would hide what this test looks at.
    let intervals = TaskIntervals { key_reload: Duration::from_secs(3600), ..test_task_intervals(&config) };
    let b = TestServer::start_with_tasks(config, intervals).await;
    let user = a.create_user("a@example.com").await;
    let token = a.issue_session(user).await;
    assert!(is_valid(&b, &token).await, "a session issued by A validates on B");
    a.clock.advance(Duration::from_secs(1));
    let kid = a.state.keys().rotate().await.unwrap();
    let fresh = a.issue_session(user).await;
    assert!(is_valid(&b, &fresh).await, "B picks up A's new key on the unknown kid");
    assert_eq!(b.state.keys().unknown_kid_reloads(), 1);
    let (mut header, _) = split(&fresh);
    header["kid"] = json!(Uuid::new_v4().to_string());
    let rest = fresh.split_once('.').unwrap().1;
    let made_up = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
    assert!(!is_valid(&b, &made_up).await);
    assert_eq!(b.state.keys().unknown_kid_reloads(), 1, "a made-up kid never causes a reload");
    let jwks: Value = b.get_json("/.well-known/jwks.json", None).await;
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == json!(kid)));
    assert_eq!(b.client.post(b.url("/logout")).bearer_auth(&token).send().await.unwrap().status(), 204);
    assert!(!is_valid(&a, &token).await, "a logout on B ends the session on A");
}

both_backends!(
    a_valid_session_validates_with_hankos_shape,
    forged_and_broken_tokens_are_invalid,
    logout_invalidates_immediately,
    the_session_limit_drops_the_oldest,
    key_rotation_keeps_old_tokens_valid,
    me_returns_the_user_or_401,
    restart_keeps_users_sessions_and_keys,
    a_second_instance_sees_rotations_and_logouts,
);
