//! The legacy SDK's user and email calls: `GET /users/{id}`, `GET /emails`, `POST /user`, `POST /users`.

use gatehouse_testkit::{Backend, TestServer, both_backends};
use serde_json::{Value, json};
use uuid::Uuid;

async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = server.client.post(server.url(path)).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn a_user_reads_only_themselves(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("Megan@Contoso.com").await;
    let token = server.issue_session(user).await;

    let (status, body) = get(&server, &format!("/users/{user}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!(user));
    assert_eq!(body["user_id"], json!(user));
    assert_eq!(body["email"], "megan@contoso.com", "Hanko's primary address beside the user object");
    assert_eq!(body["webauthn_credentials"], json!([]));
    let me = server.me(&token).await;
    for key in ["emails", "identities", "mfa_config", "created_at", "updated_at", "name"] {
        assert_eq!(body[key], me[key], "{key} as /me sends it");
    }

    let forbidden = json!({"code": 403, "message": "Forbidden"});
    let other = server.create_user("other@contoso.com").await;
    for path in [format!("/users/{other}"), format!("/users/{}", Uuid::new_v4()), "/users/not-a-uuid".to_owned()] {
        assert_eq!(get(&server, &path, Some(&token)).await, (403, forbidden.clone()), "{path}");
    }
    assert_eq!(
        get(&server, &format!("/users/{user}"), None).await,
        (401, json!({"code": 401, "message": "Unauthorized"}))
    );
}

async fn emails_lists_the_signed_in_users_addresses(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("Megan@Contoso.com").await;
    let token = server.issue_session(user).await;
    let (status, body) = get(&server, "/emails", Some(&token)).await;
    assert_eq!(status, 200);
    let me = server.me(&token).await;
    assert_eq!(body, me["emails"]);
    let [email] = body.as_array().unwrap().as_slice() else { panic!("one address: {body}") };
    assert_eq!(email["address"], "megan@contoso.com");
    assert_eq!(email["is_primary"], true);
    assert_eq!(email["is_verified"], true);
    assert!(Uuid::parse_str(email["id"].as_str().unwrap()).is_ok());
    assert_eq!(get(&server, "/emails", None).await.0, 401);
}

async fn no_sign_up_or_lookup_by_email(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    server.create_user("megan@contoso.com").await;
    let not_found = (404, json!({"code": 404, "message": "Not Found"}));
    assert_eq!(post(&server, "/user", json!({"email": "megan@contoso.com"})).await, not_found, "no enumeration");
    assert_eq!(post(&server, "/user", json!({"email": "nobody@contoso.com"})).await, not_found);
    assert_eq!(post(&server, "/user", json!({"email": "not an address"})).await.0, 422);
    let forbidden = (403, json!({"code": 403, "message": "Forbidden"}));
    assert_eq!(post(&server, "/users", json!({"email": "new@contoso.com"})).await, forbidden, "sign-up by email");
    assert_eq!(post(&server, "/users", json!({"email": "megan@contoso.com"})).await, forbidden);
}

async fn addresses_cannot_be_added_or_made_primary(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("megan@contoso.com").await;
    let token = server.issue_session(user).await;
    let email_id = server.me(&token).await["emails"][0]["id"].as_str().unwrap().to_owned();
    let forbidden = json!({"code": 403, "message": "Forbidden"});
    for (path, body) in [
        ("/emails".to_owned(), json!({"address": "new@contoso.com"})),
        (format!("/emails/{email_id}/set_primary"), json!({})),
    ] {
        let response = server.client.post(server.url(&path)).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), forbidden);
        assert_eq!(post(&server, &path, body).await.0, 401, "{path} without a session");
    }
    let unknown = server.client.delete(server.url(&format!("/emails/{}", Uuid::new_v4()))).bearer_auth(&token);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
    let malformed = server.client.delete(server.url("/emails/not-a-uuid")).bearer_auth(&token);
    assert_eq!(malformed.send().await.unwrap().status(), 400);
}

async fn account_deletion_follows_allow_deletion(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let user = server.create_user("megan@contoso.com").await;
    let token = server.issue_session(user).await;
    let delete = || server.client.delete(server.url("/user")).bearer_auth(&token).send();
    assert_eq!(delete().await.unwrap().status(), 404, "off by default: Hanko has no such route then");
    assert_eq!(server.me(&token).await["id"], json!(user));

    let server = TestServer::start(backend, |config| config.account.allow_deletion = true).await;
    let user = server.create_user("megan@contoso.com").await;
    let token = server.issue_session(user).await;
    let response = server.client.delete(server.url("/user")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("hanko=;") && cookie.contains("Max-Age=0"), "{cookie}");
    assert!(server.store.find_user(user).await.unwrap().is_none());
    let again = server.client.delete(server.url("/user")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status(), 401, "the sessions went with the user");
}

both_backends!(
    a_user_reads_only_themselves,
    emails_lists_the_signed_in_users_addresses,
    no_sign_up_or_lookup_by_email,
    addresses_cannot_be_added_or_made_primary,
    account_deletion_follows_allow_deletion,
);
