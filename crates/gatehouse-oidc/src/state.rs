//! The OAuth `state` parameter: everything the callback needs, sealed with AES-256-GCM so that nothing is kept
//! on the server between the redirect to the provider and the callback, and nothing in it can be read or forged.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_core::{
    clock::Timestamp,
    ids::{FlowId, StateId, UserId},
};
use gatehouse_crypto::sealing::{Purpose, Sealer};
use serde::{Deserialize, Serialize};

/// How long a user may spend at the provider.
pub const STATE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// What one sign-in attempt carries through the provider round trip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThirdPartyState {
    /// Unique per attempt; the callback records it so a state can be used once.
    pub id: StateId,
    /// The provider this state was issued for; the callback trusts this, never a request parameter (mix-up).
    pub provider: String,
    /// The tenant segment the authorize request targeted.
    pub tenant: String,
    pub redirect_to: String,
    pub nonce: String,
    /// The PKCE verifier for the code redemption.
    pub code_verifier: String,
    /// True when the client supplied the verifier (it will present it again for the token exchange).
    pub client_verifier: bool,
    /// When the client supplied no verifier, the same random value is set in a cookie: the state then only works
    /// in the browser that started the sign-in.
    pub browser_binding: Option<String>,
    /// The flow that started this sign-in, if any.
    pub flow_id: Option<FlowId>,
    /// The signed-in user connecting this provider from their profile, if any.
    pub connect_user_id: Option<UserId>,
    /// Unix seconds, as states already issued carry it.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("the state is malformed or was not issued by this server")]
    Invalid,
    #[error("the state has expired")]
    Expired,
}

impl ThirdPartyState {
    /// The value for the `state` parameter.
    pub fn seal(&self, sealer: &Sealer) -> String {
        let json = serde_json::to_vec(self).expect("the state serialises");
        URL_SAFE_NO_PAD.encode(sealer.seal(Purpose::ThirdPartyState, &json, b""))
    }

    /// When a state issued at `now` expires, in the form [`Self::expires_at`] holds.
    pub fn expiry_for(now: Timestamp) -> i64 {
        (now + STATE_LIFETIME).as_secs()
    }

    /// Opens a `state` parameter and checks its expiry against `now`.
    pub fn open(sealer: &Sealer, value: &str, now: Timestamp) -> Result<Self, StateError> {
        if value.len() > 8 * 1024 {
            return Err(StateError::Invalid);
        }
        let sealed = URL_SAFE_NO_PAD.decode(value).map_err(|_| StateError::Invalid)?;
        let json = sealer.open(Purpose::ThirdPartyState, &sealed, b"").map_err(|_| StateError::Invalid)?;
        let state: Self = serde_json::from_slice(&json).map_err(|_| StateError::Invalid)?;
        if state.expires_at <= now.as_secs() { Err(StateError::Expired) } else { Ok(state) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ThirdPartyState {
        ThirdPartyState {
            id: StateId::generate(),
            provider: "microsoft".into(),
            tenant: "common".into(),
            redirect_to: "https://app.example.com/".into(),
            nonce: "n".into(),
            code_verifier: "v".into(),
            client_verifier: false,
            browser_binding: Some("b".into()),
            flow_id: None,
            connect_user_id: None,
            expires_at: 1_000,
        }
    }

    /// A long `redirect_to` (a deep link with its query) still fits; a value over 8 KiB is refused unopened.
    #[test]
    fn values_up_to_8_kib_open() {
        let sealer = Sealer::new(&["state-test-secret-0123456789"]).unwrap();
        let sized = |len: usize| ThirdPartyState {
            redirect_to: format!("https://app.example.com/{}", "a".repeat(len)),
            ..state()
        };
        let long = sized(4_000);
        let value = long.seal(&sealer);
        assert!(value.len() > 4_000 && value.len() <= 8 * 1024, "{}", value.len());
        assert_eq!(ThirdPartyState::open(&sealer, &value, Timestamp::from_secs(999)), Ok(long));
        let value = sized(7_000).seal(&sealer);
        assert!(value.len() > 8 * 1024);
        assert_eq!(ThirdPartyState::open(&sealer, &value, Timestamp::from_secs(999)), Err(StateError::Invalid));
    }

    #[test]
    fn seals_opens_and_expires() {
        let sealer = Sealer::new(&["state-test-secret-0123456789"]).unwrap();
        let original = state();
        let value = original.seal(&sealer);
        assert!(!value.contains("app.example.com"), "the state is not readable");
        assert_eq!(ThirdPartyState::open(&sealer, &value, Timestamp::from_secs(999)).unwrap(), original);
        assert_eq!(ThirdPartyState::open(&sealer, &value, Timestamp::from_millis(999_999)).unwrap(), original);
        assert_eq!(ThirdPartyState::open(&sealer, &value, Timestamp::from_secs(1_000)), Err(StateError::Expired));
        assert_eq!(ThirdPartyState::expiry_for(Timestamp::from_millis(700_999)), 1_000, "five minutes, in seconds");
        let other = Sealer::new(&["another-secret-0123456789"]).unwrap();
        assert_eq!(ThirdPartyState::open(&other, &value, Timestamp::from_secs(999)), Err(StateError::Invalid));
        let mut tampered = value.into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            ThirdPartyState::open(&sealer, std::str::from_utf8(&tampered).unwrap(), Timestamp::from_secs(999)),
            Err(StateError::Invalid)
        );
        assert_eq!(ThirdPartyState::open(&sealer, "%%%", Timestamp::from_secs(999)), Err(StateError::Invalid));
    }
}
