//! The one-time token exchange: what `POST /token` and the flow's `exchange_token` both do. A token proves a
//! completed sign-in at a provider; it is taken once, checked (expiry, the client's PKCE verifier), and traded
//! for a session, or, when a signed-in user connected a provider, confirmed for that user.

use gatehouse_core::{ids::UserId, rate_limit::RateDecision};
use gatehouse_crypto::digest::constant_time_eq;
use gatehouse_store::{StoreError, TokenRecord, UserRecord};

use crate::{
    App,
    audit::RequestMeta,
    sessions::{IssuedSession, SessionError},
    thirdparty::hash,
};

/// The audit event of a token traded for a session.
pub const EXCHANGE_SUCCEEDED: &str = "token_exchange_succeeded";
/// The audit event of a token refused; its `error` is the reason.
pub const EXCHANGE_FAILED: &str = "token_exchange_failed";

/// A token traded for a session.
#[derive(Debug)]
pub struct Exchanged {
    pub user: UserRecord,
    pub issued: IssuedSession,
    /// The provider the user signed in with.
    pub provider: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("token not found")]
    NotFound,
    #[error("token has expired")]
    Expired,
    #[error("code_verifier does not match")]
    VerifierMismatch,
    /// The token belongs to someone other than the signed-in user who redeems it.
    #[error("the token is for another user")]
    OtherUser,
    /// The client failed too often; the limit's state is in the decision.
    #[error("too many failed token exchanges")]
    RateLimited(RateDecision),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// A refused token, with the client's limit after counting it (`None` when nothing was counted: rate limiting
/// off, or its Redis unreachable).
#[derive(Debug)]
pub struct Refused {
    pub error: ExchangeError,
    pub limit: Option<RateDecision>,
}

impl From<ExchangeError> for Refused {
    fn from(error: ExchangeError) -> Self {
        Self { error, limit: None }
    }
}

#[derive(Debug)]
pub struct TokenExchange<'a> {
    app: &'a App,
}

impl<'a> TokenExchange<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Takes the token `value` and trades it for a session of its user, audited as [`EXCHANGE_SUCCEEDED`].
    pub async fn for_session(
        &self,
        value: &str,
        code_verifier: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Exchanged, Refused> {
        let token = self.take(value, code_verifier, meta).await?;
        let provider = token.provider_id.unwrap_or_default();
        let amr = vec![format!("ext:{provider}")];
        let (user, issued) = self
            .app
            .sessions()
            .issue_for_user(token.user_id, amr, token.directory, meta, Some(EXCHANGE_SUCCEEDED))
            .await
            .map_err(ExchangeError::from)?;
        Ok(Exchanged { user, issued, provider })
    }

    /// Takes the token `value` of a provider that the signed-in `user` connected to their account, and confirms
    /// it was theirs; no session is made. Returns the provider.
    pub async fn for_connection(
        &self,
        value: &str,
        code_verifier: Option<&str>,
        user: UserId,
        meta: &RequestMeta,
    ) -> Result<String, Refused> {
        let token = self.take(value, code_verifier, meta).await?;
        if token.user_id != user {
            return Err(ExchangeError::OtherUser.into());
        }
        Ok(token.provider_id.unwrap_or_default())
    }

    /// Takes the token out of the store and checks it. A refused token writes an audit row and counts against
    /// the client's limit; past the limit the refusal is [`ExchangeError::RateLimited`].
    ///
    /// Only failures are counted, and only after the token was looked up, so a valid token is never refused:
    /// junk, from another client or from the same address (a shared NAT, a misconfigured proxy), cannot stop a
    /// sign-in. Successes are not capped at all: each consumes a single-use token that only a completed sign-in
    /// at the provider mints, so they are bounded there. The guesses themselves are hopeless (256-bit tokens).
    async fn take(&self, value: &str, code_verifier: Option<&str>, meta: &RequestMeta) -> Result<TokenRecord, Refused> {
        let token = self.app.store().take_token(&hash(value)).await.map_err(ExchangeError::from)?;
        let checked = match token {
            None => Err(ExchangeError::NotFound),
            Some(token) if token.expires_at <= self.app.clock().now() => Err(ExchangeError::Expired),
            Some(token) => {
                let presented = code_verifier.map(hash).unwrap_or_default();
                match &token.code_verifier_hash {
                    Some(expected) if !constant_time_eq(expected.as_bytes(), presented.as_bytes()) => {
                        Err(ExchangeError::VerifierMismatch)
                    }
                    _ => Ok(token),
                }
            }
        };
        match checked {
            Ok(token) => Ok(token),
            Err(error) => Err(self.refuse(error, meta).await),
        }
    }

    /// Records a refused token (audit row, one count against the client's limit).
    async fn refuse(&self, error: ExchangeError, meta: &RequestMeta) -> Refused {
        self.app.audit().record(EXCHANGE_FAILED, None, Some(&error.to_string()), meta).await;
        let limit = self.app.count_failed_exchange(meta).await;
        match limit {
            Some(decision) if !decision.allowed => Refused { error: ExchangeError::RateLimited(decision), limit },
            _ => Refused { error, limit },
        }
    }
}
