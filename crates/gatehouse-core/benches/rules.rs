//! The pure rules on the sign-in path: the redirect allow-list with 50 patterns, and Microsoft claims mapping.
//! `cargo bench -p gatehouse-core`

use gatehouse_core::{
    microsoft::claims::{MicrosoftClaims, TenantMode, TokenExpectations, provider_user, validate_claims},
    redirect::{RedirectAllowList, RedirectPattern},
};

fn main() {
    divan::main();
}

fn allow_list() -> RedirectAllowList {
    let patterns = (0..49)
        .map(|i| RedirectPattern::parse(&format!("https://app{i}.example.com/**")).expect("pattern"))
        .chain(std::iter::once(RedirectPattern::parse("https://*.customer.example.org**").expect("pattern")))
        .collect();
    RedirectAllowList::new(patterns)
}

/// The worst case: the matching pattern is the last of 50.
#[divan::bench]
fn allow_list_50_patterns_last_matches(bencher: divan::Bencher) {
    let list = allow_list();
    bencher.bench(|| list.check(divan::black_box("https://shop.customer.example.org/cart?item=42")).is_ok());
}

#[divan::bench]
fn allow_list_50_patterns_refused(bencher: divan::Bencher) {
    let list = allow_list();
    bencher.bench(|| list.check(divan::black_box("https://app7.example.com.evil.com/")).is_err());
}

fn claims() -> MicrosoftClaims {
    serde_json::from_value(serde_json::json!({
        "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "aud": "client", "exp": 2_000, "nbf": 1_000,
        "iat": 1_000, "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "nonce": "n-1", "email": "Megan@Contoso.com", "xms_edov": true, "name": "Megan Bowen",
    }))
    .expect("claims")
}

#[divan::bench]
fn claims_validate_and_map(bencher: divan::Bencher) {
    let claims = claims();
    let expect = TokenExpectations {
        client_id: "client".into(),
        cloud_instance: "https://login.microsoftonline.com".into(),
        tenant_mode: TenantMode::Common,
        allowed_tenants: vec![],
        expected_nonce: Some("n-1".into()),
        now: gatehouse_core::clock::Timestamp::from_secs(1_500),
        max_skew_secs: 120,
    };
    bencher.bench(|| {
        validate_claims(divan::black_box(&claims), &expect).expect("valid");
        provider_user(&claims).expect("user")
    });
}
