//! Account pre-hijacking: an attacker's own tenant vouches for `victim@contoso.com` with neither `upn` nor
//! `xms_edov`. An address nobody proved is never reported as verified, never a link target, and never keeps out
//! the person who proves it.

use gatehouse_core::config::Config;
use gatehouse_testkit::{Backend, both_backends, fake_entra::FakeUser};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    sessions::split,
    thirdparty::{APP, Setup, audit_kinds, error_of},
};

const VICTIM: &str = "victim@contoso.com";
const ATTACKER_TENANT: &str = "0badc0de-0000-4000-8000-00000000a77a";

/// Signs in as `person` in a new browser; the user id and session JWT, or the error on the landing URL.
pub async fn sign_in(setup: &Setup, person: FakeUser) -> Result<(String, String), (String, String)> {
    setup.entra.queue_user(person);
    let mut browser = setup.browser();
    let landing = browser.sign_in(&format!("{APP}/")).await;
    if landing.query_pairs().any(|(name, _)| name == "error") {
        return Err(error_of(&landing));
    }
    let body: Value = browser.exchange(&landing).await.json().await.unwrap();
    Ok((body["user_id"].as_str().unwrap().to_owned(), browser.cookies["hanko"].clone()))
}

fn attacker() -> FakeUser {
    FakeUser::new(VICTIM).in_tenant(ATTACKER_TENANT).without_proof()
}

fn victim() -> FakeUser {
    FakeUser::new(VICTIM).with_upn(VICTIM)
}

fn emails_of(me: &Value) -> Vec<(String, bool)> {
    let emails = me["emails"].as_array().unwrap();
    emails.iter().map(|e| (e["address"].as_str().unwrap().to_owned(), e["is_verified"] == json!(true))).collect()
}

/// The safe default: a sign-up whose email nobody proved is refused, with the claims to add named for the
/// operator; the victim then signs up normally. A personal account's address is proven by its tenant.
async fn an_unproven_email_is_refused_by_default(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let (code, description) = sign_in(&setup, attacker()).await.unwrap_err();
    assert_eq!(code, "unverified_email");
    assert!(description.contains("upn, email and xms_edov"), "{description}");
    assert!(audit_kinds(&setup.server).await.contains(&"thirdparty_signin_signup_failed".to_owned()));

    let (_, token) = sign_in(&setup, victim()).await.expect("the owner signs up");
    assert_eq!(emails_of(&setup.server.me(&token).await), [(VICTIM.to_owned(), true)]);

    let personal = FakeUser::new("someone@outlook.com").in_tenant(gatehouse_testkit::fake_entra::CONSUMER_TENANT);
    let (_, token) = sign_in(&setup, personal.without_proof()).await.expect("a personal account signs up");
    assert_eq!(emails_of(&setup.server.me(&token).await), [("someone@outlook.com".to_owned(), true)]);
}

/// With verification not required, the attacker gets in, but with an unverified address everywhere; when the
/// owner proves it, the address moves to the owner's own new account (linking on or off), the attacker keeps an
/// account without it, and the move is audited.
async fn an_unproven_holder_gives_way_to_the_proven_owner(backend: Backend) {
    for allow_linking in [false, true] {
        let relaxed = |config: &mut Config| {
            config.email.require_verification = false;
            config.rate_limiter.enabled = false;
            config.third_party.providers.microsoft.allow_linking = allow_linking;
        };
        let setup = Setup::start(backend, relaxed).await;
        let server = &setup.server;
        let attacker_identity = attacker();
        let (attacker_id, attacker_token) = sign_in(&setup, attacker_identity.clone()).await.expect("signed up");
        assert_eq!(emails_of(&server.me(&attacker_token).await), [(VICTIM.to_owned(), false)]);
        let (_, jwt) = split(&attacker_token);
        assert_eq!(jwt["email"]["is_verified"], false, "the session JWT tells apps the truth");
        let (_, admin_view) =
            crate::admin::admin_json(server, Method::GET, &format!("/users/{attacker_id}"), None).await;
        assert_eq!(admin_view["emails"][0]["is_verified"], false, "{admin_view}");

        let owner = victim();
        let (victim_id, victim_token) = sign_in(&setup, owner.clone()).await.expect("the owner is never locked out");
        assert_ne!(victim_id, attacker_id, "never linked into the unproven holder's account (linking {allow_linking})");
        let victim_me = server.me(&victim_token).await;
        assert_eq!(emails_of(&victim_me), [(VICTIM.to_owned(), true)]);
        assert_eq!(victim_me["emails"][0]["is_primary"], true);
        assert!(emails_of(&server.me(&attacker_token).await).is_empty(), "the holder lost the address");

        let audit = server
            .store
            .list_audit_logs(&gatehouse_store::AuditLogFilter {
                kind: Some("email_taken_by_proven_owner".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].actor_user_id.map(|id| id.to_string()), Some(attacker_id.clone()));
        let details: Value = serde_json::from_str(audit[0].details.as_deref().unwrap()).unwrap();
        assert_eq!(details, json!({"address": VICTIM, "proven_owner_user_id": victim_id, "proof": "upn"}));

        let (again, token) = sign_in(&setup, attacker_identity).await.expect("the holder still reaches their account");
        assert_eq!(again, attacker_id);
        assert!(emails_of(&server.me(&token).await).is_empty(), "the address stays with its owner");
        let (again, _) = sign_in(&setup, owner).await.unwrap();
        assert_eq!(again, victim_id, "the owner signs in to their own account again");
    }
}

/// A holder's own later proof is recorded: the same identity signing in with a UPN makes its address verified.
async fn a_later_proof_is_recorded_for_the_holder(backend: Backend) {
    let setup = Setup::start(backend, |config| config.email.require_verification = false).await;
    let person = FakeUser::new("megan@contoso.com").without_proof();
    let (user_id, token) = sign_in(&setup, person.clone()).await.unwrap();
    assert_eq!(emails_of(&setup.server.me(&token).await), [("megan@contoso.com".to_owned(), false)]);
    let (same, token) = sign_in(&setup, person.with_xms_edov(true)).await.unwrap();
    assert_eq!(same, user_id);
    assert_eq!(emails_of(&setup.server.me(&token).await), [("megan@contoso.com".to_owned(), true)]);
}

/// The review's lock-out: a work user whose address is unproven (as every work address is right after the upgrade)
/// loses it to a personal account made with that address; their next sign-in with a UPN still reaches their own
/// account, and the tenant's domain proof takes the address back from the personal account's weaker one.
async fn a_domain_proof_outranks_a_personal_account(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.email.require_verification = false;
        config.rate_limiter.enabled = false;
    })
    .await;
    let server = &setup.server;
    let work = FakeUser::new(VICTIM).without_proof();
    let (work_id, _) = sign_in(&setup, work.clone()).await.unwrap();
    let personal = FakeUser::new(VICTIM).in_tenant(gatehouse_testkit::fake_entra::CONSUMER_TENANT).without_proof();
    let (personal_id, personal_token) = sign_in(&setup, personal.clone()).await.expect("a mailbox proof beats none");
    assert_ne!(personal_id, work_id);
    assert_eq!(emails_of(&server.me(&personal_token).await), [(VICTIM.to_owned(), true)]);

    let (again, work_token) = sign_in(&setup, work.with_upn(VICTIM)).await.expect("never locked out");
    assert_eq!(again, work_id, "the work identity reaches its own account");
    assert_eq!(emails_of(&server.me(&work_token).await), [(VICTIM.to_owned(), true)], "and takes its address back");
    assert!(emails_of(&server.me(&personal_token).await).is_empty());

    let (code, _) = sign_in(&setup, FakeUser::new(VICTIM).in_tenant(gatehouse_testkit::fake_entra::CONSUMER_TENANT))
        .await
        .unwrap_err();
    assert_eq!(code, "user_conflict", "a new personal account never takes a domain-proven address");
}

both_backends!(
    a_domain_proof_outranks_a_personal_account,
    an_unproven_email_is_refused_by_default,
    an_unproven_holder_gives_way_to_the_proven_owner,
    a_later_proof_is_recorded_for_the_holder,
);
