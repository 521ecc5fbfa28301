//! The session signing keys of this instance: loaded from the store, refreshed so that a rotation made by any
//! instance (or by `gatehouse keys rotate`) is seen everywhere within seconds.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use gatehouse_core::session::SessionClaims;
use gatehouse_core::{
    clock::{Clock, Timestamp},
    config::{SessionConfig, SigningAlgorithm},
};
use gatehouse_crypto::{
    sealing::{Purpose, SealError, Sealer},
    signing::{Audience, KeyError, KeySet, SigningKey, VerifyError, generate_private_key},
};
use gatehouse_store::{Store, StoreError, StoredSigningKey};

/// How often the background reloader reads the keys, so that a rotation made by another instance is seen.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// A key set older than this is reloaded by the request that finds it (the reloader is not running, as in the
/// CLI, or is stuck).
const STALE_AFTER: Duration = RELOAD_INTERVAL.saturating_mul(2);

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Says what usually happened and what to do; the cause follows in the error's chain (`{:#}`), once.
    #[error(
        "cannot open session signing key {kid}: the database was made with other secret_keys, for example in \
         development mode (started without a configuration file; its key is in gatehouse.secret in the folder it \
         was started in). Give this configuration a database of its own (database.url), or add the database's key \
         to secret_keys"
    )]
    Open { kid: String, source: SealError },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("stored signing key {0} has an unknown algorithm")]
    UnknownAlgorithm(String),
}

#[derive(Debug)]
struct Loaded {
    set: Arc<KeySet>,
    /// `None` before the first load.
    at: Option<Timestamp>,
}

#[derive(Debug)]
pub struct KeyRing {
    store: Store,
    sealer: Arc<Sealer>,
    clock: Arc<dyn Clock>,
    algorithm: SigningAlgorithm,
    lifespan: Duration,
    audience: Audience,
    loaded: RwLock<Loaded>,
    reload: tokio::sync::Mutex<()>,
    /// Reloads caused by a token naming a key rotated in elsewhere: shown in `/metrics`.
    unknown_kid_reloads: AtomicU64,
}

impl KeyRing {
    pub fn new(store: Store, sealer: Arc<Sealer>, session: &SessionConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            sealer,
            clock,
            algorithm: session.algorithm,
            lifespan: session.lifespan.as_duration(),
            audience: Audience { audience: session.audience.clone(), issuer: session.issuer.clone() },
            loaded: RwLock::new(Loaded { set: Arc::new(KeySet::default()), at: None }),
            reload: tokio::sync::Mutex::new(()),
            unknown_kid_reloads: AtomicU64::new(0),
        }
    }

    /// Makes sure a key of the configured algorithm signs: generates the first key, or rotates when the
    /// configured algorithm changed.
    pub async fn ensure_signing_key(&self) -> Result<(), KeyRingError> {
        let set = self.reload().await?;
        if set.signing_key().is_none_or(|key| key.algorithm() != self.algorithm) {
            self.rotate().await?;
        }
        Ok(())
    }

    /// Generates a new signing key; the previous ones keep verifying until the tokens they signed expire.
    pub async fn rotate(&self) -> Result<String, KeyRingError> {
        let algorithm = self.algorithm;
        let private_key = tokio::task::spawn_blocking(move || generate_private_key(algorithm))
            .await
            .map_err(|_| KeyError::Generate(algorithm))??;
        let kid = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now();
        let stored = StoredSigningKey {
            kid: kid.clone(),
            algorithm: algorithm.as_str().to_owned(),
            sealed_private_key: self.sealer.seal(Purpose::SigningKey, &private_key, kid.as_bytes()),
            created_at: now,
            retired_at: None,
        };
        self.store.rotate_signing_key(&stored).await?;
        self.store.delete_retired_signing_keys(now - self.lifespan).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// The keys. The background reloader keeps them fresh; a set it has not refreshed for a while is reloaded
    /// here. One request reloads; the others meanwhile go on with the keys loaded a moment before instead of
    /// queueing behind it.
    pub async fn current(&self) -> Arc<KeySet> {
        let now = self.clock.now();
        let (set, fresh) = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            (loaded.set.clone(), loaded.at.is_some_and(|at| now.since(at) < STALE_AFTER))
        };
        if fresh {
            return set;
        }
        let only_one = match self.reload.try_lock() {
            Ok(guard) => guard,
            Err(_) if set.signing_key().is_some() => return set,
            Err(_) => self.reload.lock().await,
        };
        match self.load(only_one).await {
            Ok(set) => set,
            Err(error) => {
                tracing::error!(%error, "could not reload signing keys; using the ones loaded before");
                set
            }
        }
    }

    /// Reads the keys from the store now.
    pub async fn reload(&self) -> Result<Arc<KeySet>, KeyRingError> {
        self.load(self.reload.lock().await).await
    }

    /// Reads the keys from the store; the guard makes sure one load runs at a time.
    async fn load(&self, _only_one: tokio::sync::MutexGuard<'_, ()>) -> Result<Arc<KeySet>, KeyRingError> {
        let now = self.clock.now();
        let rows = self.store.list_signing_keys(now - self.lifespan).await?;
        let previous = self.loaded.read().unwrap_or_else(|e| e.into_inner()).set.clone();
        let keys = rows
            .into_iter()
            .map(|row| {
                // A kid names one key for good: a key loaded before is reused, not opened and parsed again.
                if let Some(key) = previous.get(&row.kid) {
                    return Ok(key.clone());
                }
                let alg = SigningAlgorithm::parse(&row.algorithm)
                    .ok_or_else(|| KeyRingError::UnknownAlgorithm(row.kid.clone()))?;
                let der = self
                    .sealer
                    .open(Purpose::SigningKey, &row.sealed_private_key, row.kid.as_bytes())
                    .map_err(|source| KeyRingError::Open { kid: row.kid.clone(), source })?;
                Ok(Arc::new(SigningKey::from_pkcs8(row.kid, alg, &der)?))
            })
            .collect::<Result<Vec<_>, KeyRingError>>()?;
        let set = Arc::new(KeySet::new(keys));
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Loaded { set: set.clone(), at: Some(now) };
        Ok(set)
    }

    /// How many times a token naming a key this instance had not loaded caused a reload.
    pub fn unknown_kid_reloads(&self) -> u64 {
        self.unknown_kid_reloads.load(Ordering::Relaxed)
    }

    pub async fn sign(&self, claims: &SessionClaims) -> Result<String, KeyError> {
        self.current().await.sign(claims)
    }

    /// Verifies a session JWT's signature, expiry, audience and issuer. A token naming a key this instance has
    /// not loaded yet (just rotated elsewhere) triggers a reload, but only when the store has that key: a
    /// made-up `kid` costs one primary-key lookup, never a reload.
    pub async fn verify(&self, token: &str) -> Result<SessionClaims, VerifyError> {
        let set = self.current().await;
        let now = self.clock.now();
        match set.verify(token, &self.audience, now) {
            Err(VerifyError::UnknownKey) => {
                let kid = KeySet::token_kid(token)?;
                if set.contains(&kid) || !self.store.has_signing_key(&kid).await.unwrap_or(false) {
                    return Err(VerifyError::UnknownKey);
                }
                self.unknown_kid_reloads.fetch_add(1, Ordering::Relaxed);
                let set = self.reload().await.map_err(|_| VerifyError::UnknownKey)?;
                set.verify(token, &self.audience, now)
            }
            result => result,
        }
    }
}
