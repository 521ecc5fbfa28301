//! Admin API keys: 256-bit random keys, known to Gatehouse only by their SHA-256 hash (a fast hash is right for
//! keys this random), compared in constant time. They come from `server.admin.api_keys` or from the database
//! (`gatehouse admin-key new`), where revoking one takes effect on the next request on every instance.

use std::time::Duration;

use gatehouse_core::{
    clock::Timestamp,
    config::{ADMIN_KEY_HASH_PREFIX, Secret},
    ids::AdminKeyId,
};
use gatehouse_crypto::{digest, random};
use gatehouse_store::{AdminKeyRecord, StoreError};

use crate::App;

/// Generated keys start with this, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "gha_";
/// `last_used_at` is written at most this often per key, so that admin requests do not each cost a write.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Who made an admin request: the key's id and name, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminActor {
    pub key_id: String,
    pub name: String,
}

/// `sha256:<base64url>`, the form the database and `server.admin.api_keys` hold.
pub fn hash(key: &str) -> String {
    format!("{ADMIN_KEY_HASH_PREFIX}{}", digest::sha256_base64url(key.as_bytes()))
}

/// A new key made at `now`: the value, shown once, and the record to store.
pub fn generate(name: &str, now: Timestamp) -> (String, AdminKeyRecord) {
    let key = format!("{KEY_PREFIX}{}", random::token());
    let record = AdminKeyRecord {
        id: AdminKeyId::generate(),
        name: name.to_owned(),
        key_hash: hash(&key),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    (key, record)
}

/// The keys from the configuration, as hashes.
#[derive(Clone, Debug, Default)]
pub struct ConfiguredKeys(Vec<AdminActorHash>);

#[derive(Clone, Debug)]
struct AdminActorHash {
    actor: AdminActor,
    hash: String,
}

impl ConfiguredKeys {
    pub fn new(keys: &[Secret]) -> Self {
        Self(
            keys.iter()
                .map(|key| {
                    let key = key.expose();
                    let hash = if key.starts_with(ADMIN_KEY_HASH_PREFIX) { key.to_owned() } else { hash(key) };
                    // Named by a prefix of the hash: recognisable in the audit log, useless for guessing.
                    let short = hash[ADMIN_KEY_HASH_PREFIX.len()..].chars().take(8).collect::<String>();
                    AdminActorHash {
                        actor: AdminActor { key_id: format!("config:{short}"), name: "from configuration".into() },
                        hash,
                    }
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Admin authentication: the configured keys and those in the database.
#[derive(Debug)]
pub struct AdminKeys<'a> {
    app: &'a App,
    configured: &'a ConfiguredKeys,
}

impl<'a> AdminKeys<'a> {
    pub(crate) fn new(app: &'a App, configured: &'a ConfiguredKeys) -> Self {
        Self { app, configured }
    }

    /// Whether any key can open the admin API: one configured, or one active in the database.
    pub async fn any(&self) -> Result<bool, StoreError> {
        Ok(!self.configured.is_empty() || !self.app.store().active_admin_keys().await?.is_empty())
    }

    /// The actor behind `presented`, if it is a configured key or an active key in the database.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<AdminActor>, StoreError> {
        let store = self.app.store();
        let presented = hash(presented);
        let matches = |candidate: &str| digest::constant_time_eq(candidate.as_bytes(), presented.as_bytes());
        // Every candidate is compared, so timing does not tell which one matched or how far the search went.
        let mut found = None;
        for configured in &self.configured.0 {
            if matches(&configured.hash) {
                found = Some(configured.actor.clone());
            }
        }
        let mut stored = None;
        for record in store.active_admin_keys().await? {
            if matches(&record.key_hash) {
                stored = Some(record);
            }
        }
        if let Some(record) = stored {
            let now = self.app.clock().now();
            if record.last_used_at.is_none_or(|at| now.since(at) > TOUCH_INTERVAL) {
                store.touch_admin_key(record.id, now).await?;
            }
            found = Some(AdminActor { key_id: record.id.to_string(), name: record.name });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_random_and_stored_as_hashes() {
        let (key, record) = generate("ci", Timestamp::UNIX_EPOCH);
        let (other, _) = generate("ci", Timestamp::UNIX_EPOCH);
        assert!(key.starts_with(KEY_PREFIX) && key.len() >= 40, "{key}");
        assert_ne!(key, other);
        assert_eq!(record.key_hash, hash(&key));
        assert!(!record.key_hash.contains(&key[KEY_PREFIX.len()..]));
        assert!(record.key_hash.starts_with("sha256:") && record.key_hash.len() == 7 + 43);
    }

    #[test]
    fn configured_keys_accept_plain_keys_and_hashes() {
        let plain = "a-configured-admin-key-of-32-chars!!";
        let keys = ConfiguredKeys::new(&[Secret::new(plain), Secret::new(hash("another-key-of-at-least-32-chars"))]);
        assert_eq!(keys.0[0].hash, hash(plain));
        assert_eq!(keys.0[1].hash, hash("another-key-of-at-least-32-chars"));
        assert!(keys.0[0].actor.key_id.starts_with("config:"));
        assert!(ConfiguredKeys::new(&[]).is_empty());
    }
}
