//! A session JWT must verify with an independent JOSE implementation (`jose` on npm) against the published JWKS.

use std::{path::PathBuf, process::Command};

use gatehouse_core::config::SigningAlgorithm;
use gatehouse_testkit::{Backend, TestServer};
use serde_json::Value;

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

async fn verifies_with_npm_jose(alg: SigningAlgorithm) {
    let dir = e2e_dir();
    assert!(
        dir.join("node_modules/jose").exists(),
        "run `npm ci` in e2e/ first (bash .ci/run does): the JOSE cross-check needs the `jose` package"
    );
    let server = TestServer::start(Backend::Sqlite, |config| config.session.algorithm = alg).await;
    let user = server.create_user("megan@contoso.com").await;
    let token = server.issue_session(user).await;
    let jwks_url = server.url("/.well-known/jwks.json");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg("jose-verify.mjs").arg(jwks_url).arg(token).arg("localhost").current_dir(dir).output()
    })
    .await
    .unwrap()
    .expect("node runs");
    assert!(output.status.success(), "jose refused the token: {}", String::from_utf8_lossy(&output.stderr));
    let verified: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["payload"]["sub"], serde_json::json!(user));
    assert_eq!(verified["protectedHeader"]["alg"], alg.as_str());

    server.store.delete_user(user).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_verify_with_jose() {
    verifies_with_npm_jose(SigningAlgorithm::ES256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_verify_with_jose() {
    verifies_with_npm_jose(SigningAlgorithm::RS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_verify_with_jose() {
    verifies_with_npm_jose(SigningAlgorithm::EdDSA).await;
}
