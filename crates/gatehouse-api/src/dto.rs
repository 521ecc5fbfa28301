//! JSON shapes Hanko's frontends read. One type per shape, shared by every endpoint that sends it; the same types
//! describe the public OpenAPI document, so the document cannot drift from what is sent.

use gatehouse_core::{clock::Timestamp, microsoft::directory::Tenant, session::SessionClaims};
use gatehouse_store::{IdentityRecord, UserRecord};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Hanko's flattened `dto.Claims`: `subject`, `expiration` and `session_id` always; the rest when present.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimsView {
    subject: Uuid,
    session_id: Uuid,
    /// RFC 3339.
    expiration: String,
    /// RFC 3339.
    issued_at: String,
    audience: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<ClaimedEmail>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    amr: Vec<String>,
    /// The Entra tenant of the sign-in: `id` (its `tid`) and, when read, `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    tenant: Option<Tenant>,
    /// App roles assigned in Entra, as of the sign-in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    roles: Vec<String>,
    /// The user's kept groups, as of the sign-in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    groups: Vec<String>,
    /// The operator's custom claims, at the top level as Hanko puts them.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    custom: serde_json::Map<String, serde_json::Value>,
}

/// The session's `email` claim: the user's primary address.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimedEmail {
    address: String,
    is_primary: bool,
    is_verified: bool,
}

impl From<&SessionClaims> for ClaimsView {
    fn from(claims: &SessionClaims) -> Self {
        Self {
            subject: claims.sub.into(),
            session_id: claims.session_id.into(),
            expiration: Timestamp::from_secs(claims.exp).rfc3339(),
            issued_at: Timestamp::from_secs(claims.iat).rfc3339(),
            audience: claims.aud.clone(),
            issuer: claims.iss.clone(),
            email: claims.email.as_ref().map(|email| ClaimedEmail {
                address: email.address.clone(),
                is_primary: email.is_primary,
                is_verified: email.is_verified,
            }),
            amr: claims.amr.clone(),
            tenant: claims.tenant.clone(),
            roles: claims.roles.clone(),
            groups: claims.groups.clone(),
            custom: claims.custom.clone(),
        }
    }
}

/// The display name Hanko uses for a provider id.
pub fn provider_display_name(provider_id: &str) -> &str {
    match provider_id {
        "microsoft" => "Microsoft",
        other => other,
    }
}

/// Hanko's `dto.ProfileData`, the user object of `/me` and of flow payloads.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    id: Uuid,
    /// The same as `id`; Hanko's frontends read either.
    user_id: Uuid,
    emails: Vec<UserEmail>,
    identities: Vec<UserIdentity>,
    /// Always empty: Gatehouse has no passkeys.
    #[schema(value_type = Vec<Object>)]
    passkeys: [(); 0],
    /// Always empty: Gatehouse has no security keys.
    #[schema(value_type = Vec<Object>)]
    security_keys: [(); 0],
    mfa_config: MfaConfig,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
}

/// Hanko's `dto.EmailResponse`: an address in a user object and in `GET /emails`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserEmail {
    id: Uuid,
    address: String,
    is_verified: bool,
    is_primary: bool,
    /// The first of `identities`; Hanko still sends it for older frontends.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<UserIdentity>,
    /// The linked identities that brought this address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    identities: Vec<UserIdentity>,
}

impl UserEmail {
    /// Every address of `user`, each with the identities that brought it.
    pub fn all_of(user: &UserRecord) -> Vec<Self> {
        user.emails
            .iter()
            .map(|email| {
                let identities: Vec<UserIdentity> = user
                    .identities
                    .iter()
                    .filter(|identity| identity.email_id == Some(email.id))
                    .map(UserIdentity::from)
                    .collect();
                Self {
                    id: email.id.into(),
                    address: email.address.clone(),
                    is_verified: email.is_verified(),
                    is_primary: email.is_primary,
                    identity: identities.first().cloned(),
                    identities,
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserIdentity {
    /// The provider's subject for this user.
    id: String,
    /// The provider's display name, e.g. `Microsoft`.
    provider: String,
    identity_id: Uuid,
}

/// Gatehouse has no second factors; Hanko's frontends expect the object all the same.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct MfaConfig {
    auth_app_set_up: bool,
    totp_enabled: bool,
    security_keys_enabled: bool,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.id.into(),
            user_id: user.id.into(),
            emails: UserEmail::all_of(user),
            identities: user.identities.iter().map(UserIdentity::from).collect(),
            passkeys: [],
            security_keys: [],
            mfa_config: MfaConfig::default(),
            created_at: user.created_at.rfc3339(),
            updated_at: user.updated_at.rfc3339(),
            name: user.name.clone(),
            given_name: user.given_name.clone(),
            family_name: user.family_name.clone(),
            picture: user.picture.clone(),
        }
    }
}

/// Hanko's `dto.GetUserResponse` of `GET /users/{id}`: the user object with the primary address beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetails {
    #[serde(flatten)]
    profile: UserView,
    /// The primary address.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// Always empty: Gatehouse has no passkeys (Hanko's deprecated name for them).
    #[schema(value_type = Vec<Object>)]
    webauthn_credentials: [(); 0],
}

impl From<&UserRecord> for UserDetails {
    fn from(user: &UserRecord) -> Self {
        Self {
            profile: UserView::from(user),
            email: user.primary_email().map(|email| email.address.clone()),
            webauthn_credentials: [],
        }
    }
}

impl From<&IdentityRecord> for UserIdentity {
    fn from(identity: &IdentityRecord) -> Self {
        Self {
            id: identity.provider_user_id.clone(),
            provider: provider_display_name(&identity.provider_id).to_owned(),
            identity_id: identity.id.into(),
        }
    }
}
