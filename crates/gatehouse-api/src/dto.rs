//! JSON shapes Hanko's frontends read. One renderer per shape, shared by every endpoint that sends it.

use gatehouse_core::session::SessionClaims;
use gatehouse_store::UserRecord;
use serde_json::{Map, Value, json};

use crate::clock::{rfc3339_ms, rfc3339_secs};

/// Hanko's flattened `dto.Claims`: `subject`, `expiration` and `session_id` always; the rest when present.
pub fn claims_json(claims: &SessionClaims) -> Value {
    let mut out = Map::new();
    out.insert("subject".into(), json!(claims.sub));
    out.insert("session_id".into(), json!(claims.session_id));
    out.insert("expiration".into(), json!(rfc3339_secs(claims.exp)));
    out.insert("issued_at".into(), json!(rfc3339_secs(claims.iat)));
    out.insert("audience".into(), json!(claims.aud));
    if let Some(issuer) = &claims.iss {
        out.insert("issuer".into(), json!(issuer));
    }
    if let Some(email) = &claims.email {
        out.insert("email".into(), json!(email));
    }
    if !claims.amr.is_empty() {
        out.insert("amr".into(), json!(claims.amr));
    }
    Value::Object(out)
}

/// The display name Hanko uses for a provider id.
pub fn provider_display_name(provider_id: &str) -> &str {
    match provider_id {
        "microsoft" => "Microsoft",
        other => other,
    }
}

/// Hanko's `dto.ProfileData`, the user object of `/me` and of flow payloads.
pub fn user_json(user: &UserRecord) -> Value {
    let emails: Vec<Value> = user
        .emails
        .iter()
        .map(|email| {
            let identities: Vec<Value> = user
                .identities
                .iter()
                .filter(|identity| identity.email_id == Some(email.id))
                .map(identity_json)
                .collect();
            let mut value = json!({
                "id": email.id,
                "address": email.address,
                "is_verified": email.is_verified(),
                "is_primary": email.is_primary,
            });
            if !identities.is_empty() {
                value["identities"] = json!(identities);
            }
            value
        })
        .collect();
    json!({
        "id": user.id,
        "user_id": user.id,
        "emails": emails,
        "identities": user.identities.iter().map(identity_json).collect::<Vec<_>>(),
        "passkeys": [],
        "security_keys": [],
        "mfa_config": {"auth_app_set_up": false, "totp_enabled": false, "security_keys_enabled": false},
        "created_at": rfc3339_ms(user.created_at),
        "updated_at": rfc3339_ms(user.updated_at),
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "picture": user.picture,
    })
}

fn identity_json(identity: &gatehouse_store::IdentityRecord) -> Value {
    json!({
        "id": identity.provider_user_id,
        "provider": provider_display_name(&identity.provider_id),
        "identity_id": identity.id,
    })
}
