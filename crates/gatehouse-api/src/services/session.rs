//! Issuing and checking sessions: a server-side row plus a signed JWT, delivered as Hanko delivers it.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use gatehouse_core::{
    config::{CookieRetention, SameSite, SessionConfig},
    session::{SessionClaims, SessionGrant, SessionPolicy},
};
use gatehouse_store::{NewSession, SessionRecord, UserRecord};
use uuid::Uuid;

use crate::{
    ApiError, AppState, clock,
    services::audit::{AuditLog, RequestMeta},
};

pub const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
pub const X_SESSION_LIFETIME: HeaderName = HeaderName::from_static("x-session-lifetime");
pub const X_SESSION_RETENTION: HeaderName = HeaderName::from_static("x-session-retention");

/// A session that was just created.
#[derive(Debug)]
pub struct IssuedSession {
    pub token: String,
    pub claims: SessionClaims,
    /// Sessions dropped to respect `session.limit`.
    pub evicted: Vec<Uuid>,
}

/// A request's valid session: the JWT verified and its server-side row alive.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub claims: SessionClaims,
    pub session: SessionRecord,
}

#[derive(Debug)]
pub struct SessionService<'a> {
    state: &'a AppState,
}

fn policy(config: &SessionConfig) -> SessionPolicy {
    SessionPolicy {
        lifespan_secs: config.lifespan.as_secs() as i64,
        limit: config.limit,
        audience: config.audience.clone(),
        issuer: config.issuer.clone(),
    }
}

fn grant_for(user: &UserRecord, amr: Vec<String>) -> SessionGrant {
    let email = user.primary_email().map(|email| gatehouse_core::session::EmailClaim {
        address: email.address.clone(),
        is_primary: true,
        is_verified: email.is_verified(),
    });
    SessionGrant { user_id: user.id, email, amr }
}

impl<'a> SessionService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    fn config(&self) -> &SessionConfig {
        &self.state.config().session
    }

    /// A session for the user with `user_id`, with their primary email as the `email` claim: how every sign-in
    /// ends. Returns the user as read, for answers that show them.
    pub async fn issue_for_user(
        &self,
        user_id: Uuid,
        amr: Vec<String>,
        meta: &RequestMeta,
        audit_kind: Option<&str>,
    ) -> Result<(UserRecord, IssuedSession), ApiError> {
        let user = self.state.store().find_user(user_id).await?.ok_or_else(ApiError::unauthorized)?;
        let issued = self.issue(&grant_for(&user, amr), meta, audit_kind).await?;
        Ok((user, issued))
    }

    /// Creates a session for `grant`, dropping the user's oldest sessions beyond the limit. `audit_kind` names the
    /// event that opens it; its audit row is written with the session, in one transaction.
    pub async fn issue(
        &self,
        grant: &SessionGrant,
        meta: &RequestMeta,
        audit_kind: Option<&str>,
    ) -> Result<IssuedSession, ApiError> {
        let now_ms = clock::now_ms();
        let claims = policy(self.config()).claims(grant, Uuid::now_v7(), now_ms / 1000);
        let token = self.state.keys().sign(&claims).await.map_err(ApiError::internal)?;
        let session = NewSession {
            id: claims.session_id,
            user_id: grant.user_id,
            user_agent: meta.user_agent.clone(),
            ip_address: meta.source_ip.clone(),
            created_at: now_ms,
            expires_at: claims.exp * 1000,
        };
        let audit = audit_kind.map(|kind| AuditLog::entry(kind, Some(grant.user_id), None, meta));
        let evicted = self.state.store().create_session(&session, self.config().limit, audit.as_ref()).await?;
        if let Some(kind) = audit_kind {
            AuditLog::announce(kind, Some(grant.user_id), None);
        }
        Ok(IssuedSession { token, claims, evicted })
    }

    /// The session behind `token`, if the JWT verifies and its row still exists. Invalid tokens are `None`.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>, ApiError> {
        let Ok(claims) = self.state.keys().verify(token).await else {
            return Ok(None);
        };
        let session = self.state.store().find_live_session(claims.session_id, clock::now_ms()).await?;
        Ok(session.filter(|session| session.user_id == claims.sub).map(|session| Authenticated { claims, session }))
    }

    /// Headers that hand a new session to the client: lifetime and retention, and the JWT either in
    /// `X-Auth-Token` (header mode) or in the session cookie.
    pub fn delivery_headers(&self, issued: &IssuedSession) -> HeaderMap {
        let config = self.config();
        let mut headers = HeaderMap::new();
        let lifetime = (issued.claims.exp - issued.claims.iat).max(0);
        headers.insert(X_SESSION_LIFETIME, HeaderValue::from(lifetime));
        headers.insert(X_SESSION_RETENTION, HeaderValue::from_static(config.cookie.retention.as_str()));
        match HeaderValue::from_str(&issued.token) {
            Ok(token) if config.enable_auth_token_header => {
                headers.insert(X_AUTH_TOKEN, token);
            }
            _ => {
                let max_age = match config.cookie.retention {
                    CookieRetention::Persistent => Some(lifetime),
                    CookieRetention::Session => None,
                };
                if let Ok(cookie) = HeaderValue::from_str(&self.cookie(&issued.token, max_age)) {
                    headers.append(header::SET_COOKIE, cookie);
                }
            }
        }
        headers
    }

    /// A `Set-Cookie` value that removes the session cookie.
    pub fn expired_cookie(&self) -> HeaderValue {
        HeaderValue::from_str(&self.cookie("", Some(-1))).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn cookie(&self, value: &str, max_age: Option<i64>) -> String {
        let cookie = &self.config().cookie;
        let mut text = format!("{}={value}; Path=/", cookie.name);
        if let Some(domain) = &cookie.domain {
            text.push_str(&format!("; Domain={domain}"));
        }
        match max_age {
            Some(age) if age < 0 => text.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(age) => text.push_str(&format!("; Max-Age={age}")),
            None => {}
        }
        if cookie.secure {
            text.push_str("; Secure");
        }
        if cookie.http_only {
            text.push_str("; HttpOnly");
        }
        text.push_str(match cookie.same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
        text
    }
}
