//! Sessions: a server-side row plus a signed JWT. Issuing, checking, listing and ending them; how they reach the
//! client (cookie or header) is the HTTP layer's business.

use std::collections::BTreeMap;

use gatehouse_core::{
    clock::Timestamp,
    config::SessionConfig,
    ids::{SessionId, UserId},
    jwt_template::{ClaimsPlan, JwtTooLarge, TemplateInput},
    microsoft::directory::DirectoryFacts,
    session::{EmailClaim, SessionClaims, SessionGrant, SessionPolicy},
};
use gatehouse_crypto::signing::KeyError;
use gatehouse_store::{NewSession, SessionRecord, StoreError, UserRecord};

use crate::{
    App,
    audit::{AuditLog, RequestMeta},
};

/// More than a session JWT's header and signature take together in base64url, whatever the signing key (RS256 with
/// a 4096-bit key is the longest: 683 characters of signature).
const HEADER_AND_SIGNATURE_BOUND: usize = 1024;

/// Why a session could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot sign the session token: {0}")]
    Signing(#[from] KeyError),
    /// The user was deleted between the sign-in and the session.
    #[error("the user no longer exists")]
    UnknownUser,
    /// The JWT would be over `session.max_jwt_bytes`: nothing is stored, no session is made.
    #[error(transparent)]
    TooLarge(#[from] JwtTooLarge),
}

/// A session that was just created.
#[derive(Debug)]
pub struct IssuedSession {
    pub token: String,
    pub claims: SessionClaims,
    /// Sessions dropped to respect `session.limit`.
    pub evicted: Vec<SessionId>,
}

impl IssuedSession {
    /// Seconds from issue to expiry, as `X-Session-Lifetime` tells the client.
    pub fn lifetime_secs(&self) -> i64 {
        (self.claims.exp - self.claims.iat).max(0)
    }
}

/// A request's valid session: the JWT verified and its server-side row alive.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub claims: SessionClaims,
    pub session: SessionRecord,
}

impl Authenticated {
    pub fn user_id(&self) -> UserId {
        self.claims.sub
    }
}

#[derive(Debug)]
pub struct Sessions<'a> {
    app: &'a App,
}

fn policy(config: &SessionConfig) -> SessionPolicy {
    SessionPolicy {
        lifespan_secs: config.lifespan.as_secs() as i64,
        limit: config.limit,
        audience: config.audience.clone(),
        issuer: config.issuer.clone(),
    }
}

/// What a session of `user` says: Hanko's claims, the sign-in's facts, and the operator's custom claims.
fn grant_for(
    plan: &ClaimsPlan,
    user: &UserRecord,
    amr: Vec<String>,
    directory: Option<DirectoryFacts>,
) -> SessionGrant {
    let email = user.primary_email().map(|email| EmailClaim {
        address: email.address.clone(),
        is_primary: true,
        is_verified: email.is_verified(),
    });
    grant_with(plan, user.id, email, amr, directory)
}

fn grant_with(
    plan: &ClaimsPlan,
    user_id: UserId,
    email: Option<EmailClaim>,
    amr: Vec<String>,
    directory: Option<DirectoryFacts>,
) -> SessionGrant {
    let no_values = BTreeMap::new();
    let custom = plan.claims(&TemplateInput {
        user_id,
        email: email.as_ref(),
        tenant_id: directory.as_ref().map(|facts| facts.tenant.id.as_str()),
        tenant_name: directory.as_ref().and_then(|facts| facts.tenant.name.as_deref()),
        roles: directory.as_ref().map_or(&[][..], |facts| facts.roles.as_slice()),
        groups: directory.as_ref().map_or(&[][..], |facts| facts.groups.as_slice()),
        custom: directory.as_ref().map_or(&no_values, |facts| &facts.custom),
    });
    SessionGrant { user_id, email, amr, directory, custom }
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// A session for the user with `user_id`, with their primary email as the `email` claim and what the sign-in
    /// learnt from the provider (`directory`): how every sign-in ends. `audit_kind` names the event that opens it;
    /// its audit row is written with the session, in one transaction. Returns the user as read, for answers that
    /// show them.
    pub async fn issue_for_user(
        &self,
        user_id: UserId,
        amr: Vec<String>,
        directory: Option<DirectoryFacts>,
        meta: &RequestMeta,
        audit_kind: Option<&str>,
    ) -> Result<(UserRecord, IssuedSession), SessionError> {
        let store = self.app.store();
        let user = store.find_user(user_id).await?.ok_or(SessionError::UnknownUser)?;
        let plan = self.app.claims_plan();
        let grant = grant_for(plan, &user, amr, directory);
        let config = &self.app.config().session;
        let now = self.app.clock().now();
        let claims = policy(config).claims(&grant, SessionId::generate(), now);
        let token = self.app.keys().sign(&claims).await?;
        plan.check_size(&token)?;
        let session = NewSession {
            id: claims.session_id,
            user_id,
            user_agent: meta.user_agent.clone(),
            ip_address: meta.source_ip.clone(),
            created_at: now,
            expires_at: Timestamp::from_secs(claims.exp),
        };
        let audit = audit_kind.map(|kind| AuditLog::entry(kind, Some(user_id), None, meta, now));
        let evicted = store.create_session(&session, config.limit, audit.as_ref()).await?;
        if let Some(kind) = audit_kind {
            AuditLog::announce(kind, Some(user_id), None);
        }
        Ok((user, IssuedSession { token, claims, evicted }))
    }

    /// Refuses, before a sign-in stores anything, what would make every session of it too large: the JWT of a
    /// session with `amr` and `directory` but no email is a lower bound of the one the token exchange will mint
    /// (an email only adds claims and text), so a sign-in refused here could never have had a session.
    pub async fn check_fits(&self, amr: Vec<String>, directory: &DirectoryFacts) -> Result<(), SessionError> {
        let plan = self.app.claims_plan();
        let grant = grant_with(plan, UserId::generate(), None, amr, Some(directory.clone()));
        let claims = policy(&self.app.config().session).claims(&grant, SessionId::generate(), self.app.clock().now());
        // Most sign-ins are far below the cap: measured without a signature, they are spared a second one.
        let payload = serde_json::to_vec(&claims).map_or(usize::MAX, |json| json.len());
        if payload.div_ceil(3) * 4 + HEADER_AND_SIGNATURE_BOUND <= plan.max_jwt_bytes {
            return Ok(());
        }
        let token = self.app.keys().sign(&claims).await?;
        Ok(plan.check_size(&token)?)
    }

    /// The session behind `token`, if the JWT verifies and its row still exists. Invalid tokens are `None`; an
    /// error means the answer is not known (the database is unreachable), never that the session is invalid.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>, StoreError> {
        let Ok(claims) = self.app.keys().verify(token).await else {
            return Ok(None);
        };
        let session = self.app.store().find_live_session(claims.session_id, self.app.clock().now()).await?;
        Ok(session.filter(|session| session.user_id == claims.sub).map(|session| Authenticated { claims, session }))
    }

    /// Marks the session used now.
    pub async fn touch(&self, session: &Authenticated) -> Result<(), StoreError> {
        self.app.store().touch_session(session.session.id, self.app.clock().now()).await
    }

    /// Ends the session (logout), with its audit row.
    pub async fn sign_out(&self, session: &Authenticated, meta: &RequestMeta) -> Result<(), StoreError> {
        self.app.store().delete_session(session.session.id).await?;
        self.app.audit().record("user_logged_out", Some(session.user_id()), None, meta).await;
        Ok(())
    }

    /// The user's live sessions.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        self.app.store().list_sessions(user_id, self.app.clock().now()).await
    }

    /// Ends one of the user's sessions; `false` when the user has no session with that id (another user's
    /// session id included: it is left alone).
    pub async fn end_for_user(&self, user_id: UserId, session_id: SessionId) -> Result<bool, StoreError> {
        self.app.store().delete_user_session(user_id, session_id).await
    }

    /// Ends every session of the user; returns how many.
    pub async fn end_all_for_user(&self, user_id: UserId) -> Result<u64, StoreError> {
        self.app.store().delete_user_sessions(user_id).await
    }
}
