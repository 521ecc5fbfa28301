//! The records the store reads and writes, with typed ids and [`Timestamp`]s.

use gatehouse_core::{
    clock::Timestamp,
    ids::{AdminKeyId, AuditEntryId, EmailId, FlowId, IdentityId, SessionId, TokenId, UserId},
};
use gatehouse_core::{email::EmailProof, microsoft::directory::DirectoryFacts};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    /// Becomes the primary email.
    pub email: Option<NewEmail>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEmail {
    pub id: EmailId,
    pub address: gatehouse_core::email::Email,
    pub proof: Option<EmailProof>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub emails: Vec<EmailRecord>,
    pub identities: Vec<IdentityRecord>,
}

impl UserRecord {
    pub fn primary_email(&self) -> Option<&EmailRecord> {
        self.emails.iter().find(|email| email.is_primary)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailRecord {
    pub id: EmailId,
    pub address: String,
    /// What proved the address; `None`: nothing did.
    pub proof: Option<EmailProof>,
    pub is_primary: bool,
    pub created_at: Timestamp,
}

impl EmailRecord {
    /// Only a proven address is reported as verified.
    pub fn is_verified(&self) -> bool {
        self.proof.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: IdentityId,
    pub provider_id: String,
    pub provider_user_id: String,
    pub email_id: Option<EmailId>,
    pub data: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_used: Timestamp,
}

/// A session signing key as stored: the private key is sealed by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: String,
    pub sealed_private_key: Vec<u8>,
    pub created_at: Timestamp,
    /// When it stopped signing; it keeps verifying until tokens it signed have expired.
    pub retired_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLogEntry {
    pub id: AuditEntryId,
    pub kind: String,
    pub error: Option<String>,
    pub http_request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub actor_user_id: Option<UserId>,
    pub actor_email: Option<String>,
    /// JSON text; never tokens, codes or secrets.
    pub details: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Default)]
pub struct AuditLogFilter {
    pub kind: Option<String>,
    pub actor_user_id: Option<UserId>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: u32,
    pub offset: u64,
}

/// A one-time token as stored: its value only as a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub value_hash: String,
    pub identity_id: Option<IdentityId>,
    /// Hash of the PKCE verifier the client must present again, when the client supplied one.
    pub code_verifier_hash: Option<String>,
    pub is_flow: bool,
    pub user_created: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// What the sign-in learnt from the provider, for the session the token is traded for.
    pub directory: Option<DirectoryFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub user_id: UserId,
    pub code_verifier_hash: Option<String>,
    pub expires_at: Timestamp,
    /// The provider of the identity the token was made for (`None` if that identity is gone).
    pub provider_id: Option<String>,
    pub directory: Option<DirectoryFacts>,
}

/// A user as an identity provider describes them, to sign in, link or sign up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderProfile {
    pub provider_id: String,
    pub provider_user_id: String,
    pub email: Option<ProviderEmailAddress>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The provider's claims as JSON, stored with the identity.
    pub claims_json: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEmailAddress {
    pub address: gatehouse_core::email::Email,
    pub proof: Option<EmailProof>,
}

/// What the store found about a provider user, read inside the transaction that will act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSnapshot {
    pub existing_identity: Option<gatehouse_core::linking::ExistingIdentity>,
    pub email_owner: Option<gatehouse_core::linking::EmailOwner>,
    /// Emails of the identity's user (sign-in), or of the user to link to.
    pub user_email_count: usize,
}

/// What the transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderAccount {
    pub user_id: UserId,
    pub identity_id: IdentityId,
    pub outcome: AccountOutcome,
    /// The user who held the address without proof and lost it to this sign-in.
    pub displaced_holder: Option<UserId>,
}

/// What a provider sign-in writes in its own transaction once the account is known: the one-time token that
/// hands the account to the app, and the audit rows of the sign-in. Nothing is half-recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInRecords {
    pub token: NewToken,
    pub audit: Vec<AuditLogEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountOutcome {
    SignedIn,
    Linked,
    SignedUp,
}

/// A flow of the flow API, as stored. `data` is the flow's state machine position and stash, as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub id: FlowId,
    pub data: String,
    pub version: i64,
    pub csrf_token: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// A user as listed by the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSummary {
    pub id: UserId,
    pub primary_email: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A versioned settings document (see `settings` in the schema).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSettings {
    pub version: i64,
    pub data: String,
    pub updated_at: Timestamp,
}

/// An admin API key; only the hash of the key is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminKeyRecord {
    pub id: AdminKeyId,
    pub name: String,
    pub key_hash: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}
