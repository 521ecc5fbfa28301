//! Random values from the operating system's CSPRNG.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// `N` random bytes. Panics only if the OS random source fails, which nothing can recover from.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).expect("the operating system's random source failed");
    out
}

/// 32 random bytes as unpadded base64url: an unguessable token.
pub fn token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}
