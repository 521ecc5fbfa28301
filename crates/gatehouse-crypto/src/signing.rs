//! Session signing keys and session JWTs.
//!
//! Keys are generated here as PKCS#8 and stored (sealed) by the caller. A [`KeySet`] holds every key that may
//! still verify a live token; the newest signs. Verification trusts nothing from the token's header but the
//! `kid`: the algorithm is the one the key was made for, so `alg: none` and HS256-with-the-public-key confusion
//! cannot work.

use std::sync::Arc;

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
        ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    },
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use gatehouse_core::{clock::Timestamp, config::SigningAlgorithm, session::SessionClaims};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a {0:?} key")]
    Generate(SigningAlgorithm),
    #[error("the stored {0:?} key is not a valid PKCS#8 key: {1}")]
    Invalid(SigningAlgorithm, String),
    #[error("no signing key is available")]
    NoSigningKey,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Why a token does not verify. Callers answer "invalid" for all of them; the variants are for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("the token names no key or an unknown key")]
    UnknownKey,
    #[error("the token's algorithm is not its key's algorithm")]
    AlgorithmMismatch,
    #[error("invalid token: {0}")]
    Invalid(String),
}

fn to_jwt_algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// A new private key as PKCS#8 DER. RSA keys are 2048 bits: the size Microsoft and most IdPs sign with, and a
/// quarter of the signing cost of Hanko's 4096.
pub fn generate_private_key(alg: SigningAlgorithm) -> Result<Vec<u8>, KeyError> {
    let fail = |_| KeyError::Generate(alg);
    let rng = SystemRandom::new();
    Ok(match alg {
        SigningAlgorithm::RS256 => {
            RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?.as_der().map_err(fail)?.as_ref().to_vec()
        }
        SigningAlgorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(fail)?.as_ref().to_vec()
        }
        SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(fail)?.as_ref().to_vec(),
    })
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM block, the form jsonwebtoken loads.
pub fn private_key_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

/// One signing key: private half for signing, public half for verifying and for the JWKS.
pub struct SigningKey {
    kid: String,
    alg: SigningAlgorithm,
    private: PrivateKey,
    /// Parsed once too; jsonwebtoken would rebuild the public key for every token it verifies.
    public: ParsedPublicKey,
    public_jwk: Jwk,
}

/// A private key parsed once. (jsonwebtoken parses and checks the key again for every token it signs, which for
/// RSA costs about as much as the signature itself.)
enum PrivateKey {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    fn from_pkcs8(alg: SigningAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let invalid = |e: aws_lc_rs::error::KeyRejected| KeyError::Invalid(alg, e.to_string());
        Ok(match alg {
            SigningAlgorithm::RS256 => Self::Rsa(RsaKeyPair::from_pkcs8(der).map_err(invalid)?),
            SigningAlgorithm::ES256 => {
                Self::Ecdsa(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(invalid)?)
            }
            SigningAlgorithm::EdDSA => Self::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(invalid)?),
        })
    }

    /// The JWS signature of `message`: PKCS#1 v1.5 for RS256, the fixed-length `r || s` for ES256.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Sign("the signature could not be computed".into());
        match self {
            Self::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
            Self::Ecdsa(key) => Ok(key.sign(&SystemRandom::new(), message).map_err(failed)?.as_ref().to_vec()),
            Self::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }

    /// The public half, ready to verify this key's signatures with this key's algorithm only.
    fn public_key(&self) -> Result<ParsedPublicKey, aws_lc_rs::error::KeyRejected> {
        match self {
            Self::Rsa(key) => ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref()),
            Self::Ecdsa(key) => ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref()),
            Self::Ed25519(key) => ParsedPublicKey::new(&ED25519, key.public_key().as_ref()),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_pkcs8(kid: impl Into<String>, alg: SigningAlgorithm, pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        let invalid = |e: jsonwebtoken::errors::Error| KeyError::Invalid(alg, e.to_string());
        let pem = private_key_pem(pkcs8_der);
        let encoding = match alg {
            SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .map_err(invalid)?;
        let kid = kid.into();
        let mut public_jwk = Jwk::from_encoding_key(&encoding, to_jwt_algorithm(alg)).map_err(invalid)?;
        public_jwk.common.key_id = Some(kid.clone());
        public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        public_jwk.common.key_algorithm = Some(match alg {
            SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
            SigningAlgorithm::ES256 => KeyAlgorithm::ES256,
            SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
        });
        let private = PrivateKey::from_pkcs8(alg, pkcs8_der)?;
        let public = private.public_key().map_err(|e| KeyError::Invalid(alg, e.to_string()))?;
        Ok(Self { kid, alg, private, public, public_jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.alg
    }

    pub fn public_jwk(&self) -> &Jwk {
        &self.public_jwk
    }
}

/// What a verified token must be for.
#[derive(Clone, Debug)]
pub struct Audience {
    pub audience: Vec<String>,
    pub issuer: Option<String>,
}

/// The keys an instance knows: the first signs, all verify.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    /// `keys` newest first; the first one becomes the signing key.
    pub fn new(keys: Vec<Arc<SigningKey>>) -> Self {
        Self { keys }
    }

    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.keys.first().map(Arc::as_ref)
    }

    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().map(Arc::as_ref)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// The public JWK Set, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|key| key.public_jwk.clone()).collect() }
    }

    pub fn sign(&self, claims: &SessionClaims) -> Result<String, KeyError> {
        let key = self.signing_key().ok_or(KeyError::NoSigningKey)?;
        let mut header = Header::new(to_jwt_algorithm(key.alg));
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        let encoding_failed = |e: serde_json::Error| KeyError::Sign(e.to_string());
        let header = serde_json::to_vec(&header).map_err(encoding_failed)?;
        let claims = serde_json::to_vec(claims).map_err(encoding_failed)?;
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = key.private.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The `kid` a token claims to be signed with, if it has one; lets callers refresh keys on an unknown kid.
    pub fn token_kid(token: &str) -> Result<String, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        header.kid.ok_or(VerifyError::UnknownKey)
    }

    /// Verifies signature, expiry at `now` (no leeway), audience and issuer.
    pub fn verify(&self, token: &str, expect: &Audience, now: Timestamp) -> Result<SessionClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.get(kid).ok_or(VerifyError::UnknownKey)?;
        if header.alg != to_jwt_algorithm(key.alg) {
            return Err(VerifyError::AlgorithmMismatch);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (_, payload) = signing_input.split_once('.').ok_or(VerifyError::Malformed)?;
        if payload.contains('.') {
            return Err(VerifyError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| VerifyError::Malformed)?;
        key.public
            .verify_sig(signing_input.as_bytes(), &signature)
            .map_err(|_| VerifyError::Invalid("the signature does not verify".into()))?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| VerifyError::Malformed)?;
        let claims: SessionClaims =
            serde_json::from_slice(&payload).map_err(|e| VerifyError::Invalid(format!("claims: {e}")))?;
        if claims.exp <= now.as_secs() {
            return Err(VerifyError::Invalid("the token has expired".into()));
        }
        if !claims.aud.iter().any(|audience| expect.audience.contains(audience)) {
            return Err(VerifyError::Invalid("the token is for another audience".into()));
        }
        if expect.issuer.is_some() && claims.iss != expect.issuer {
            return Err(VerifyError::Invalid("the token is from another issuer".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_core::ids::{SessionId, UserId};
    use gatehouse_core::session::SessionClaims;

    use super::*;

    fn key(alg: SigningAlgorithm, kid: &str) -> Arc<SigningKey> {
        Arc::new(SigningKey::from_pkcs8(kid, alg, &generate_private_key(alg).unwrap()).unwrap())
    }

    /// Verification reads the time it is given: tests fix it.
    const NOW: i64 = 1_800_000_000;
    const NOW_AT: Timestamp = Timestamp::from_secs(NOW);

    fn claims(exp_offset: i64, aud: &str) -> SessionClaims {
        SessionClaims {
            sub: UserId::generate(),
            session_id: SessionId::generate(),
            iat: NOW,
            exp: NOW + exp_offset,
            aud: vec![aud.into()],
            iss: None,
            email: None,
            amr: vec![],
            tenant: None,
            roles: Vec::new(),
            groups: Vec::new(),
            custom: Default::default(),
        }
    }

    fn expect() -> Audience {
        Audience { audience: vec!["localhost".into()], issuer: None }
    }

    #[test]
    fn a_key_set_finds_its_keys_by_kid_and_lists_them_newest_first() {
        let set = KeySet::new(vec![key(SigningAlgorithm::ES256, "new"), key(SigningAlgorithm::EdDSA, "old")]);
        assert!(set.contains("new") && set.contains("old") && !set.contains("other") && !set.contains(""));
        let listed: Vec<(&str, SigningAlgorithm)> = set.keys().map(|key| (key.kid(), key.algorithm())).collect();
        assert_eq!(listed, [("new", SigningAlgorithm::ES256), ("old", SigningAlgorithm::EdDSA)]);
        assert_eq!(set.signing_key().map(SigningKey::kid), Some("new"));
    }

    /// Keys end up in logs through `Debug`: they show which key, never the key itself.
    #[test]
    fn a_signing_key_shows_its_kid_and_algorithm_and_never_its_private_part() {
        let der = generate_private_key(SigningAlgorithm::ES256).unwrap();
        let key = SigningKey::from_pkcs8("kid-1", SigningAlgorithm::ES256, &der).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("kid-1") && shown.contains("ES256"), "{shown}");
        let pem_body: String = private_key_pem(&der).lines().filter(|line| !line.starts_with("-----")).collect();
        assert!(!shown.contains(&pem_body[..16]) && !shown.contains("private"), "{shown}");
    }

    #[test]
    fn every_algorithm_round_trips() {
        for alg in [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let set = KeySet::new(vec![key(alg, "k1")]);
            let claims = claims(60, "localhost");
            let token = set.sign(&claims).unwrap();
            assert_eq!(set.verify(&token, &expect(), NOW_AT).unwrap(), claims, "{alg:?}");
            let jwk = serde_json::to_value(&set.jwks().keys[0]).unwrap();
            assert_eq!(
                (jwk["kid"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
                (Some("k1"), Some(alg.as_str()), Some("sig"))
            );
            assert!(jwk.get("d").is_none(), "the JWKS must not contain private parts");
        }
    }

    #[test]
    fn expired_wrong_audience_and_unknown_key_fail() {
        let set = KeySet::new(vec![key(SigningAlgorithm::ES256, "k1")]);
        assert!(matches!(
            set.verify(&set.sign(&claims(-1, "localhost")).unwrap(), &expect(), NOW_AT),
            Err(VerifyError::Invalid(_))
        ));
        assert!(matches!(
            set.verify(&set.sign(&claims(60, "other")).unwrap(), &expect(), NOW_AT),
            Err(VerifyError::Invalid(_))
        ));
        let other = KeySet::new(vec![key(SigningAlgorithm::ES256, "k2")]);
        assert_eq!(
            other.verify(&set.sign(&claims(60, "localhost")).unwrap(), &expect(), NOW_AT),
            Err(VerifyError::UnknownKey)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_with_the_same_kid_fails() {
        let set = KeySet::new(vec![key(SigningAlgorithm::ES256, "k1")]);
        let forger = KeySet::new(vec![key(SigningAlgorithm::ES256, "k1")]);
        let forged = forger.sign(&claims(60, "localhost")).unwrap();
        assert!(matches!(set.verify(&forged, &expect(), NOW_AT), Err(VerifyError::Invalid(_))));
    }

    #[test]
    fn tokens_verify_with_jsonwebtoken_too() {
        for alg in [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let set = KeySet::new(vec![key(alg, "k1")]);
            let claims = claims(60, "localhost");
            let token = set.sign(&claims).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&set.jwks().keys[0]).unwrap();
            let mut validation = jsonwebtoken::Validation::new(to_jwt_algorithm(alg));
            validation.set_audience(&["localhost"]);
            let verified = jsonwebtoken::decode::<SessionClaims>(&token, &decoding, &validation).unwrap();
            assert_eq!(verified.claims, claims, "{alg:?}");
            assert_eq!(verified.header.kid.as_deref(), Some("k1"));
            assert_eq!(verified.header.typ.as_deref(), Some("JWT"));
        }
    }

    #[test]
    fn tampered_reshaped_and_mislabelled_tokens_fail() {
        let set = KeySet::new(vec![key(SigningAlgorithm::RS256, "k1")]);
        let token = set.sign(&claims(60, "localhost")).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let encode = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let mut raised = claims(60, "localhost");
        raised.sub = UserId::generate();
        let tampered = format!("{}.{}.{}", parts[0], encode(serde_json::to_value(&raised).unwrap()), parts[2]);
        assert!(matches!(set.verify(&tampered, &expect(), NOW_AT), Err(VerifyError::Invalid(_))));
        assert_eq!(set.verify(&format!("{token}.{}", parts[2]), &expect(), NOW_AT), Err(VerifyError::Malformed));
        assert_eq!(set.verify(&format!("{}.{}", parts[0], parts[1]), &expect(), NOW_AT), Err(VerifyError::Malformed));
        for alg in ["none", "HS256", "ES256"] {
            let header = encode(serde_json::json!({ "alg": alg, "kid": "k1", "typ": "JWT" }));
            let relabelled = format!("{header}.{}.{}", parts[1], parts[2]);
            assert!(set.verify(&relabelled, &expect(), NOW_AT).is_err(), "{alg}");
        }
    }

    #[test]
    fn the_issuer_must_match_when_one_is_configured() {
        let set = KeySet::new(vec![key(SigningAlgorithm::EdDSA, "k1")]);
        let expect_issuer = Audience { issuer: Some("https://login.example.com".into()), ..expect() };
        let mut issued = claims(60, "localhost");
        assert!(matches!(
            set.verify(&set.sign(&issued).unwrap(), &expect_issuer, NOW_AT),
            Err(VerifyError::Invalid(_))
        ));
        issued.iss = Some("https://other.example.com".into());
        assert!(matches!(
            set.verify(&set.sign(&issued).unwrap(), &expect_issuer, NOW_AT),
            Err(VerifyError::Invalid(_))
        ));
        issued.iss = expect_issuer.issuer.clone();
        assert_eq!(set.verify(&set.sign(&issued).unwrap(), &expect_issuer, NOW_AT).unwrap(), issued);
        assert!(
            set.verify(&set.sign(&claims(0, "localhost")).unwrap(), &expect(), NOW_AT).is_err(),
            "exp = now has expired"
        );
    }

    #[test]
    fn older_keys_still_verify_after_rotation() {
        let old = key(SigningAlgorithm::ES256, "old");
        let token = KeySet::new(vec![old.clone()]).sign(&claims(60, "localhost")).unwrap();
        let rotated = KeySet::new(vec![key(SigningAlgorithm::EdDSA, "new"), old]);
        assert!(rotated.verify(&token, &expect(), NOW_AT).is_ok());
        assert_eq!(KeySet::token_kid(&rotated.sign(&claims(60, "localhost")).unwrap()).unwrap(), "new");
    }
}
