//! The one-time token exchange: a token is taken once, before its expiry, with the verifier its sign-in was started
//! with; a refusal is audited and counted per client; a valid token is never refused.

use std::time::Duration;

use gatehouse_app::{
    RequestMeta,
    thirdparty::hash,
    token_exchange::{EXCHANGE_FAILED, EXCHANGE_SUCCEEDED, ExchangeError},
};
use gatehouse_core::{
    clock::{Clock, Timestamp},
    email::{Email, EmailProof},
    ids::TokenId,
    linking::{AddressAction, LinkingDecision},
};
use gatehouse_store::{NewToken, ProviderAccount, ProviderEmailAddress, ProviderProfile, SignInRecords};

use crate::TestApp;

const LIFETIME: Duration = Duration::from_secs(60);

fn client(ip: &str) -> RequestMeta {
    RequestMeta { request_id: None, source_ip: Some(ip.into()), user_agent: None }
}

/// Signs `subject` up with Microsoft the way a callback does, handing out the token `value` (bound to the PKCE
/// `verifier` when given) that expires [`LIFETIME`] from now.
async fn sign_up(test: &TestApp, subject: &str, value: &str, verifier: Option<&str>) -> ProviderAccount {
    let profile = ProviderProfile {
        provider_id: "microsoft".into(),
        provider_user_id: subject.into(),
        email: Some(ProviderEmailAddress {
            address: Email::parse(&format!("{subject}@contoso.com")).unwrap(),
            proof: Some(EmailProof::Upn),
        }),
        name: None,
        given_name: None,
        family_name: None,
        claims_json: "{}".into(),
    };
    let now = test.clock.now();
    let signed_up = test
        .store
        .sign_in_with_provider(
            &profile,
            None,
            now,
            |_| Ok::<_, ()>(LinkingDecision::SignUp { address: AddressAction::Create }),
            |account| SignInRecords { token: token(account, value, verifier, now + LIFETIME), audit: vec![] },
        )
        .await
        .unwrap();
    signed_up.unwrap()
}

/// The stored form of the token `value` handing `account` to the app.
fn token(account: &ProviderAccount, value: &str, verifier: Option<&str>, expires_at: Timestamp) -> NewToken {
    NewToken {
        id: TokenId::generate(),
        user_id: account.user_id,
        value_hash: hash(value),
        identity_id: Some(account.identity_id),
        code_verifier_hash: verifier.map(hash),
        is_flow: false,
        user_created: true,
        created_at: expires_at - LIFETIME,
        directory: None,
        expires_at,
    }
}

/// Another token for the user of `account`, as a second sign-in would hand out.
async fn another_token(test: &TestApp, account: &ProviderAccount, value: &str, verifier: Option<&str>) {
    test.store.insert_token(&token(account, value, verifier, test.clock.now() + LIFETIME)).await.unwrap();
}

#[tokio::test]
async fn a_token_is_traded_once_for_a_session_of_its_user_and_names_its_provider() {
    let test = TestApp::start(|_| {}).await;
    let account = sign_up(&test, "megan", "first", None).await;
    another_token(&test, &account, "token-1", None).await;
    let exchange = test.app.token_exchange();

    let exchanged = exchange.for_session("token-1", None, &client("10.0.0.1")).await.unwrap();
    assert_eq!((exchanged.user.id, exchanged.issued.claims.sub), (account.user_id, account.user_id));
    assert_eq!(exchanged.provider, "microsoft");
    assert_eq!(exchanged.issued.claims.amr, ["ext:microsoft"]);
    let session = test.app.sessions().authenticate(&exchanged.issued.token).await.unwrap().expect("a live session");
    assert_eq!(session.user_id(), account.user_id);
    let audit = test.audit().await;
    let succeeded = audit.iter().find(|entry| entry.kind == EXCHANGE_SUCCEEDED).expect("audited");
    assert_eq!(succeeded.actor_user_id, Some(account.user_id));

    let again = exchange.for_session("token-1", None, &client("10.0.0.1")).await.unwrap_err();
    assert!(matches!(again.error, ExchangeError::NotFound), "{:?}", again.error);
    let unknown = exchange.for_session("never-issued", None, &client("10.0.0.2")).await.unwrap_err();
    assert!(matches!(unknown.error, ExchangeError::NotFound), "{:?}", unknown.error);
}

#[tokio::test]
async fn a_token_works_until_its_expiry_and_not_at_it() {
    let test = TestApp::start(|_| {}).await;
    let account = sign_up(&test, "megan", "early", None).await;
    another_token(&test, &account, "late", None).await;
    let exchange = test.app.token_exchange();

    test.clock.advance(LIFETIME - Duration::from_millis(1));
    exchange.for_session("early", None, &client("10.0.0.1")).await.expect("a millisecond before its expiry");
    test.clock.advance(Duration::from_millis(1));
    let refused = exchange.for_session("late", None, &client("10.0.0.1")).await.unwrap_err();
    assert!(matches!(refused.error, ExchangeError::Expired), "{:?}", refused.error);
    let expired = exchange.for_session("late", None, &client("10.0.0.1")).await.unwrap_err();
    assert!(matches!(expired.error, ExchangeError::NotFound), "an expired token is consumed all the same");
}

#[tokio::test]
async fn a_verifier_bound_token_needs_that_verifier_and_an_unbound_one_ignores_it() {
    let test = TestApp::start(|_| {}).await;
    let account = sign_up(&test, "megan", "bound", Some("the-verifier")).await;
    for value in ["bound-2", "bound-3"] {
        another_token(&test, &account, value, Some("the-verifier")).await;
    }
    another_token(&test, &account, "unbound", None).await;
    let exchange = test.app.token_exchange();
    let meta = client("10.0.0.1");

    let missing = exchange.for_session("bound", None, &meta).await.unwrap_err();
    assert!(matches!(missing.error, ExchangeError::VerifierMismatch), "{:?}", missing.error);
    let wrong = exchange.for_session("bound-2", Some("another-verifier"), &meta).await.unwrap_err();
    assert!(matches!(wrong.error, ExchangeError::VerifierMismatch), "{:?}", wrong.error);
    exchange.for_session("bound-3", Some("the-verifier"), &meta).await.expect("the verifier it was bound to");
    exchange.for_session("unbound", Some("any-verifier"), &meta).await.expect("no verifier was bound");
}

#[tokio::test]
async fn a_connection_token_confirms_its_own_user_only_and_makes_no_session() {
    let test = TestApp::start(|_| {}).await;
    let megan = sign_up(&test, "megan", "megan-token", None).await;
    let alex = sign_up(&test, "alex", "alex-token", None).await;
    let exchange = test.app.token_exchange();
    let meta = client("10.0.0.1");

    let other = exchange.for_connection("alex-token", None, megan.user_id, &meta).await.unwrap_err();
    assert!(matches!(other.error, ExchangeError::OtherUser), "{:?}", other.error);
    assert_eq!(exchange.for_connection("megan-token", None, megan.user_id, &meta).await.unwrap(), "microsoft");
    assert!(test.app.sessions().list(megan.user_id).await.unwrap().is_empty());
    assert!(test.app.sessions().list(alex.user_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn refusals_are_audited_and_limited_per_client_but_a_valid_token_always_passes() {
    let test = TestApp::start(|config| config.rate_limiter.token_limits.tokens = 2).await;
    let account = sign_up(&test, "megan", "valid", None).await;
    let exchange = test.app.token_exchange();
    let (guesser, neighbour) = (client("203.0.113.7"), client("203.0.113.8"));

    let first = exchange.for_session("guess-1", None, &guesser).await.unwrap_err();
    assert!(matches!(first.error, ExchangeError::NotFound));
    assert_eq!(first.limit.map(|limit| (limit.allowed, limit.remaining)), Some((true, 1)));
    exchange.for_session("guess-2", None, &guesser).await.unwrap_err();
    let over = exchange.for_session("guess-3", None, &guesser).await.unwrap_err();
    assert!(matches!(over.error, ExchangeError::RateLimited(decision) if !decision.allowed), "{:?}", over.error);
    let elsewhere = exchange.for_session("guess-4", None, &neighbour).await.unwrap_err();
    assert!(matches!(elsewhere.error, ExchangeError::NotFound), "each client has its own limit");

    let exchanged = exchange.for_session("valid", None, &guesser).await.expect("a valid token, even over the limit");
    assert_eq!(exchanged.user.id, account.user_id);

    let failed: Vec<_> = test.audit().await.into_iter().filter(|entry| entry.kind == EXCHANGE_FAILED).collect();
    let reasons: Vec<(Option<&str>, Option<&str>)> =
        failed.iter().map(|entry| (entry.source_ip.as_deref(), entry.error.as_deref())).collect();
    assert_eq!(
        reasons,
        [(Some("203.0.113.7"), Some("token not found")), (Some("203.0.113.8"), Some("token not found"))],
        "one row per client and window: anonymous failures are aggregated"
    );
    test.clock.advance(Duration::from_secs(60));
    exchange.for_session("guess-5", None, &guesser).await.unwrap_err();
    let window_later = test.audit().await.into_iter().filter(|entry| entry.kind == EXCHANGE_FAILED).count();
    assert_eq!(window_later, 3, "the next window writes a row again");
}
