//! Sealing data at rest with AES-256-GCM under the configured `secret_keys`.
//!
//! Each configured secret is stretched with HKDF-SHA256 into one AES key per purpose, so that a ciphertext made
//! for one purpose (a signing key) can never be opened as another (third-party state). The first secret seals;
//! every secret opens, which lets an operator prepend a new secret and retire the old one later.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    hkdf::{HKDF_SHA256, KeyType, Salt},
};

const FORMAT_VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 4;
const HEADER_LEN: usize = 1 + FINGERPRINT_LEN + NONCE_LEN;

/// What a sealed value is for; part of the key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    SigningKey,
    ThirdPartyState,
    ProviderCredential,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SigningKey => b"gatehouse/v1/signing-key",
            Self::ThirdPartyState => b"gatehouse/v1/thirdparty-state",
            Self::ProviderCredential => b"gatehouse/v1/provider-credential",
        }
    }

    const ALL: [Self; 3] = [Self::SigningKey, Self::ThirdPartyState, Self::ProviderCredential];
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("no secret key is configured")]
    NoKeys,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with any configured secret key (wrong key, or tampered)")]
    CannotOpen,
}

struct DerivedKey {
    fingerprint: [u8; FINGERPRINT_LEN],
    keys: Vec<(Purpose, LessSafeKey)>,
}

/// The AES keys derived from the configured secrets.
pub struct Sealer {
    keys: Vec<DerivedKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("keys", &self.keys.len()).finish()
    }
}

struct AesKeyLen;

impl KeyType for AesKeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// Derives keys from the secrets, first one sealing. Fails when there is none.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Self, SealError> {
        if secrets.is_empty() {
            return Err(SealError::NoKeys);
        }
        let salt = Salt::new(HKDF_SHA256, b"gatehouse secret_keys");
        let keys = secrets
            .iter()
            .map(|secret| {
                let prk = salt.extract(secret.as_ref().as_bytes());
                let fingerprint_hash = crate::digest::sha256(secret.as_ref().as_bytes());
                let mut fingerprint = [0u8; FINGERPRINT_LEN];
                fingerprint.copy_from_slice(&fingerprint_hash[..FINGERPRINT_LEN]);
                let keys = Purpose::ALL
                    .into_iter()
                    .map(|purpose| {
                        let info = [purpose.label()];
                        let okm = prk.expand(&info, AesKeyLen).expect("32 bytes is a valid HKDF-SHA256 output length");
                        let mut bytes = [0u8; 32];
                        okm.fill(&mut bytes).expect("the output buffer has the requested length");
                        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
                        (purpose, LessSafeKey::new(key))
                    })
                    .collect();
                DerivedKey { fingerprint, keys }
            })
            .collect();
        Ok(Self { keys })
    }

    fn key(derived: &DerivedKey, purpose: Purpose) -> &LessSafeKey {
        &derived.keys.iter().find(|(p, _)| *p == purpose).expect("a key is derived for every purpose").1
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the key id), which must be given again to open it.
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let derived = &self.keys[0];
        let nonce_bytes = crate::random::bytes::<NONCE_LEN>();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&derived.fingerprint);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        Self::key(derived, purpose)
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context), &mut body)
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts a value made by [`Sealer::seal`] with any configured secret.
    pub fn open(&self, purpose: Purpose, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN + AES_256_GCM.tag_len() || sealed[0] != FORMAT_VERSION {
            return Err(SealError::Malformed);
        }
        let fingerprint = &sealed[1..1 + FINGERPRINT_LEN];
        let nonce: [u8; NONCE_LEN] =
            sealed[1 + FINGERPRINT_LEN..HEADER_LEN].try_into().map_err(|_| SealError::Malformed)?;
        // The fingerprint picks the right secret at once; the others are tried only if it matches none (a collision).
        let (matching, others): (Vec<_>, Vec<_>) = self.keys.iter().partition(|k| k.fingerprint == fingerprint);
        for derived in matching.into_iter().chain(others) {
            let mut body = sealed[HEADER_LEN..].to_vec();
            if let Ok(plain) = Self::key(derived, purpose).open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            ) {
                return Ok(plain.to_vec());
            }
        }
        Err(SealError::CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old-secret-key-0123456789";
    const NEW: &str = "new-secret-key-9876543210";

    #[test]
    fn round_trip() {
        let sealer = Sealer::new(&[OLD]).unwrap();
        let sealed = sealer.seal(Purpose::SigningKey, b"private key", b"kid-1");
        assert_eq!(sealer.open(Purpose::SigningKey, &sealed, b"kid-1").unwrap(), b"private key");
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
    }

    #[test]
    fn bound_to_purpose_and_context() {
        let sealer = Sealer::new(&[OLD]).unwrap();
        let sealed = sealer.seal(Purpose::SigningKey, b"x", b"kid-1");
        assert_eq!(sealer.open(Purpose::ThirdPartyState, &sealed, b"kid-1"), Err(SealError::CannotOpen));
        assert_eq!(sealer.open(Purpose::SigningKey, &sealed, b"kid-2"), Err(SealError::CannotOpen));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let sealed = Sealer::new(&[OLD]).unwrap().seal(Purpose::SigningKey, b"x", b"");
        let rotated = Sealer::new(&[NEW, OLD]).unwrap();
        assert_eq!(rotated.open(Purpose::SigningKey, &sealed, b"").unwrap(), b"x");
        let resealed = rotated.seal(Purpose::SigningKey, b"x", b"");
        assert_eq!(Sealer::new(&[OLD]).unwrap().open(Purpose::SigningKey, &resealed, b""), Err(SealError::CannotOpen));
    }

    #[test]
    fn tampering_is_detected() {
        let sealer = Sealer::new(&[OLD]).unwrap();
        let mut sealed = sealer.seal(Purpose::SigningKey, b"payload", b"");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(sealer.open(Purpose::SigningKey, &sealed, b""), Err(SealError::CannotOpen));
        assert_eq!(sealer.open(Purpose::SigningKey, &sealed[..10], b""), Err(SealError::Malformed));
    }

    #[test]
    fn needs_a_key() {
        assert_eq!(Sealer::new::<&str>(&[]).err(), Some(SealError::NoKeys));
    }
}
