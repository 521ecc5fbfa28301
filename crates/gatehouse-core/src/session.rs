//! Session rules: what a session JWT says, how long it lives, and which sessions make room for a new one.

use serde::{Deserialize, Serialize};

use crate::{
    clock::Timestamp,
    ids::{SessionId, UserId},
    microsoft::directory::{DirectoryFacts, Tenant},
};

/// The `email` claim: the user's primary email, as Hanko puts it in the JWT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaim {
    pub address: String,
    pub is_primary: bool,
    pub is_verified: bool,
}

/// The claims of a Gatehouse session JWT (Hanko's set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: UserId,
    pub session_id: SessionId,
    /// Unix seconds, as JWTs count.
    pub iat: i64,
    /// Unix seconds, as JWTs count.
    pub exp: i64,
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailClaim>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The Entra tenant of the sign-in that made this session (`id` is its `tid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Tenant>,
    /// App roles assigned to the user in Entra, as of that sign-in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The user's groups as of that sign-in (only those `groups.keep` keeps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The operator's custom claims (declared ones and the JWT template's).
    #[serde(flatten)]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// What the issuer needs to mint a session.
#[derive(Clone, Debug)]
pub struct SessionGrant {
    pub user_id: UserId,
    pub email: Option<EmailClaim>,
    /// Authentication methods (`ext:microsoft`, …), empty when not known.
    pub amr: Vec<String>,
    /// What Microsoft said about the user at the sign-in, when the session comes from one.
    pub directory: Option<DirectoryFacts>,
    /// The operator's custom claims, already rendered.
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// The policy knobs for sessions, from configuration.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    pub lifespan_secs: i64,
    pub limit: usize,
    pub audience: Vec<String>,
    pub issuer: Option<String>,
}

impl SessionPolicy {
    /// Claims for a new session that starts at `now`.
    pub fn claims(&self, grant: &SessionGrant, session_id: SessionId, now: Timestamp) -> SessionClaims {
        SessionClaims {
            sub: grant.user_id,
            session_id,
            iat: now.as_secs(),
            exp: now.as_secs() + self.lifespan_secs,
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            email: grant.email.clone(),
            amr: grant.amr.clone(),
            tenant: grant.directory.as_ref().map(|facts| facts.tenant.clone()),
            roles: grant.directory.as_ref().map(|facts| facts.roles.clone()).unwrap_or_default(),
            groups: grant.directory.as_ref().map(|facts| facts.groups.clone()).unwrap_or_default(),
            custom: grant.custom.clone(),
        }
    }
}

/// A live session as far as the limit rule cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveSession {
    pub id: SessionId,
    pub created_at: Timestamp,
}

/// The sessions to delete so that a new one fits under `limit`: the oldest go first (Hanko's rule).
pub fn sessions_to_evict(live: &[LiveSession], limit: usize) -> Vec<SessionId> {
    let keep = limit.saturating_sub(1);
    if live.len() <= keep {
        return Vec::new();
    }
    let mut newest_first = live.to_vec();
    newest_first.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    newest_first.into_iter().skip(keep).map(|session| session.id).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn session_id(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(n))
    }

    fn live(n: i64) -> Vec<LiveSession> {
        (0..n).map(|i| LiveSession { id: session_id(i as u128 + 1), created_at: Timestamp::from_secs(i) }).collect()
    }

    #[test]
    fn under_the_limit_nothing_goes() {
        assert!(sessions_to_evict(&live(4), 5).is_empty());
    }

    #[test]
    fn at_the_limit_the_oldest_goes() {
        assert_eq!(sessions_to_evict(&live(5), 5), vec![session_id(1)]);
    }

    #[test]
    fn limit_one_replaces_the_session() {
        assert_eq!(sessions_to_evict(&live(2), 1).len(), 2);
    }

    #[test]
    fn claims_follow_the_policy() {
        let policy = SessionPolicy { lifespan_secs: 3600, limit: 5, audience: vec!["app".into()], issuer: None };
        let grant = SessionGrant {
            user_id: UserId::from_uuid(Uuid::from_u128(7)),
            email: None,
            amr: vec!["ext:microsoft".into()],
            directory: None,
            custom: Default::default(),
        };
        let claims = policy.claims(&grant, session_id(9), Timestamp::from_millis(1_000_999));
        assert_eq!((claims.iat, claims.exp, claims.aud.clone()), (1_000, 4_600, vec!["app".to_string()]));
        let json = serde_json::to_value(&claims).unwrap();
        for absent in ["iss", "email", "tenant", "roles", "groups"] {
            assert!(json.get(absent).is_none(), "{absent}");
        }
        assert_eq!(json["amr"], serde_json::json!(["ext:microsoft"]));
    }

    #[test]
    fn a_sign_in_s_directory_facts_and_custom_claims_are_carried() {
        let policy = SessionPolicy { lifespan_secs: 60, limit: 5, audience: vec!["app".into()], issuer: None };
        let grant = SessionGrant {
            user_id: UserId::from_uuid(Uuid::from_u128(7)),
            email: None,
            amr: vec![],
            directory: Some(DirectoryFacts {
                tenant: Tenant { id: "tid-1".into(), name: Some("Contoso".into()) },
                roles: vec!["Admin".into()],
                groups: vec!["g-1".into()],
                groups_from_graph: false,
                custom: Default::default(),
                read_at: Timestamp::from_secs(1),
            }),
            custom: serde_json::json!({ "department": "Sales" }).as_object().unwrap().clone(),
        };
        let claims = policy.claims(&grant, session_id(9), Timestamp::from_secs(2));
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["tenant"], serde_json::json!({ "id": "tid-1", "name": "Contoso" }));
        assert_eq!(
            (json["roles"].clone(), json["groups"].clone()),
            (serde_json::json!(["Admin"]), serde_json::json!(["g-1"]))
        );
        assert_eq!(json["department"], "Sales");
        assert_eq!(serde_json::from_value::<SessionClaims>(json).unwrap(), claims);
    }

    proptest! {
        #[test]
        fn eviction_leaves_room_and_keeps_the_newest(count in 0i64..20, limit in 1usize..8) {
            let sessions = live(count);
            let evicted = sessions_to_evict(&sessions, limit);
            let remaining = sessions.len() - evicted.len();
            prop_assert!(remaining < limit);
            prop_assert_eq!(remaining, sessions.len().min(limit - 1));
            let newest_evicted = evicted.iter().map(|id| id.as_uuid().as_u128()).max().unwrap_or(0);
            let oldest_kept = sessions.iter().map(|s| s.id.as_uuid().as_u128()).filter(|id| !evicted.iter().any(|e| e.as_uuid().as_u128() == *id)).min();
            if let Some(oldest_kept) = oldest_kept {
                prop_assert!(newest_evicted < oldest_kept);
            }
        }
    }
}
