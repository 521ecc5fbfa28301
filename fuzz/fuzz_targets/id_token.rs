//! Fuzzes ID-token checking. An input starting with `{` is a claims set: it is signed with a test key, so that the
//! claims parsing and Microsoft's rules run, and the signed token must be accepted exactly when the claims, parsed
//! on their own, pass `validate_claims` and `provider_user`. Any other input is a token as received: splitting,
//! base64, header and JSON parsing must refuse it without panicking (the fuzzer cannot forge the signature).
#![no_main]

use std::sync::LazyLock;

use gatehouse_core::{
    config::SigningAlgorithm,
    microsoft::claims::{MicrosoftClaims, TenantMode, TokenExpectations, provider_user, validate_claims},
};
use gatehouse_crypto::signing::{generate_private_key, private_key_pem};
use gatehouse_oidc::{jwks::ProviderKey, microsoft::check_id_token};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, jwk::Jwk};
use libfuzzer_sys::fuzz_target;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

struct TestIssuer {
    signing: EncodingKey,
    key: ProviderKey,
    expectations: TokenExpectations,
}

/// Made once: RSA key generation is far slower than one run of the target.
static ISSUER: LazyLock<TestIssuer> = LazyLock::new(|| {
    let pem = private_key_pem(&generate_private_key(SigningAlgorithm::RS256).unwrap());
    let signing = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let jwk = Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap();
    let key = ProviderKey {
        kid: "fuzz".into(),
        issuer: Some("https://login.microsoftonline.com/{tenantid}/v2.0".into()),
        key: DecodingKey::from_jwk(&jwk).unwrap(),
    };
    let expectations = TokenExpectations {
        client_id: "gatehouse-fuzz".into(),
        cloud_instance: "https://login.microsoftonline.com".into(),
        tenant_mode: TenantMode::Organizations,
        allowed_tenants: vec![TENANT.into()],
        expected_nonce: Some("n-0S6_WzA2Mj".into()),
        now: gatehouse_core::clock::Timestamp::from_secs(1_700_000_000),
        max_skew_secs: 120,
    };
    TestIssuer { signing, key, expectations }
});

fuzz_target!(|data: &[u8]| {
    let issuer = &*ISSUER;
    if data.first() == Some(&b'{') {
        let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) else { return };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(issuer.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &issuer.signing).unwrap();
        let checked = check_id_token(&token, &issuer.key, &issuer.expectations);
        // The key's issuer scope adds nothing here: `validate_claims` wants the same `iss`.
        let direct = serde_json::from_value::<MicrosoftClaims>(claims)
            .ok()
            .filter(|claims| validate_claims(claims, &issuer.expectations).is_ok());
        match (checked, direct.as_ref().map(provider_user)) {
            (Ok(user), Some(Ok(expected))) => {
                assert_eq!(user, expected);
                assert!(!user.subject.is_empty() && user.tenant_id.eq_ignore_ascii_case(TENANT));
            }
            (Err(_), None | Some(Err(_))) => {}
            (checked, expected) => panic!("check_id_token: {checked:?}, the claims on their own: {expected:?}"),
        }
    } else if let Ok(token) = std::str::from_utf8(data) {
        assert!(check_id_token(token, &issuer.key, &issuer.expectations).is_err(), "a forged token passed: {token}");
    }
});
