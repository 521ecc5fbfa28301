//! The error codes Hanko's frontends understand for third-party sign-in, used by every path that reports one.

/// A third-party sign-in failure as it reaches the browser in `error=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThirdPartyErrorCode {
    InvalidRequest,
    ServerError,
    UserConflict,
    MultipleAccounts,
    UnverifiedEmail,
    EmailMaxNum,
    SignupDisabled,
    /// Gatehouse's own: too many callbacks from one client (each costs a request to Microsoft).
    RateLimitExceeded,
}

impl ThirdPartyErrorCode {
    pub const ALL: [Self; 8] = [
        Self::InvalidRequest,
        Self::ServerError,
        Self::UserConflict,
        Self::MultipleAccounts,
        Self::UnverifiedEmail,
        Self::EmailMaxNum,
        Self::SignupDisabled,
        Self::RateLimitExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::ServerError => "server_error",
            Self::UserConflict => "user_conflict",
            Self::MultipleAccounts => "multiple_accounts",
            Self::UnverifiedEmail => "unverified_email",
            Self::EmailMaxNum => "email_maxnum",
            Self::SignupDisabled => "signup_disabled",
            Self::RateLimitExceeded => "rate_limit_exceeded",
        }
    }
}
