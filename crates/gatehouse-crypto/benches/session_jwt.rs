//! Session JWT sign and verify per algorithm; the figures behind the default (`cargo bench -p gatehouse-crypto`).

use std::sync::Arc;

use gatehouse_core::{config::SigningAlgorithm, session::SessionClaims};
use gatehouse_crypto::signing::{Audience, KeySet, SigningKey, generate_private_key};

const ALGORITHMS: [SigningAlgorithm; 3] = [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA];

fn main() {
    divan::main();
}

fn key_set(alg: SigningAlgorithm) -> KeySet {
    let der = generate_private_key(alg).expect("key");
    KeySet::new(vec![Arc::new(SigningKey::from_pkcs8("bench", alg, &der).expect("key"))])
}

fn claims() -> SessionClaims {
    SessionClaims {
        sub: gatehouse_core::ids::UserId::generate(),
        session_id: gatehouse_core::ids::SessionId::generate(),
        iat: 4_000_000_000,
        exp: 4_000_043_200,
        aud: vec!["localhost".into()],
        iss: None,
        email: None,
        amr: vec!["ext:microsoft".into()],
        tenant: None,
        roles: Vec::new(),
        groups: Vec::new(),
        custom: Default::default(),
    }
}

#[divan::bench(args = ALGORITHMS)]
fn sign(bencher: divan::Bencher, alg: SigningAlgorithm) {
    let set = key_set(alg);
    let claims = claims();
    bencher.bench(|| set.sign(divan::black_box(&claims)).expect("sign"));
}

#[divan::bench(args = ALGORITHMS)]
fn verify(bencher: divan::Bencher, alg: SigningAlgorithm) {
    let set = key_set(alg);
    let token = set.sign(&claims()).expect("sign");
    let audience = Audience { audience: vec!["localhost".into()], issuer: None };
    bencher.bench(|| {
        set.verify(divan::black_box(&token), &audience, gatehouse_core::clock::Timestamp::from_secs(4_000_000_000))
            .expect("verify")
    });
}

#[divan::bench(args = ALGORITHMS, sample_count = 10, sample_size = 1)]
fn generate_key(alg: SigningAlgorithm) -> Vec<u8> {
    generate_private_key(alg).expect("key")
}
