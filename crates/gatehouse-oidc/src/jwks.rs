//! A provider's signing keys, cached. Steady state costs no request: keys are refetched once a day, or when a
//! token names a key we have not seen (a rollover) — and then at most once per interval, so that tokens with
//! made-up key ids cannot make us hammer the provider.

use std::{collections::HashMap, sync::Arc, time::Duration};

use gatehouse_core::clock::{Clock, Timestamp};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// Microsoft's guidance: refresh signing keys about once a day.
pub const REFRESH_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The least time between two refetches caused by unknown key ids.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// One published signing key.
pub struct ProviderKey {
    pub kid: String,
    /// Microsoft's `issuer` property: the issuer (possibly the `{tenantid}` template) this key may sign for.
    pub issuer: Option<String>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKey").field("kid", &self.kid).field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the provider's keys failed: {0}")]
    Fetch(String),
    #[error("the provider publishes no key {0:?}")]
    UnknownKey(String),
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<JwkDocument>,
}

#[derive(Deserialize)]
struct JwkDocument {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: Option<String>,
    e: Option<String>,
    issuer: Option<String>,
}

#[derive(Default)]
struct Cached {
    keys: Arc<HashMap<String, Arc<ProviderKey>>>,
    /// The last successful fetch.
    fetched_at: Option<Timestamp>,
    /// The last fetch caused by an unknown key id.
    last_unknown_kid_fetch: Option<Timestamp>,
}

/// The cached key set of one JWKS URL. Readers never wait on the network while the keys they need are cached:
/// the cache's lock is held only to read or replace the set, and one fetch at a time runs under its own lock.
pub struct JwksCache {
    http: reqwest::Client,
    url: String,
    clock: Arc<dyn Clock>,
    cached: std::sync::Mutex<Cached>,
    fetching: tokio::sync::Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("url", &self.url).finish_non_exhaustive()
    }
}

/// What the cache may do about a key id it was asked for.
enum Lookup {
    Found(Arc<ProviderKey>),
    /// Not cached, and a fetch is allowed: the set is stale, or the id is unknown and the throttle allows one.
    Fetch,
    Unknown,
}

impl JwksCache {
    pub fn new(http: reqwest::Client, url: String, clock: Arc<dyn Clock>) -> Self {
        Self { http, url, clock, cached: Default::default(), fetching: Default::default(), fetches: Default::default() }
    }

    /// How many times the keys were fetched; for tests and metrics.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key with this `kid`, fetching the key set if it is stale or the key is new to us (at most once per
    /// [`UNKNOWN_KID_REFETCH_INTERVAL`]). A stale set whose refetch fails keeps serving the keys it has: the
    /// provider's keys outlive a JWKS outage.
    pub async fn key(&self, kid: &str) -> Result<Arc<ProviderKey>, JwksError> {
        if let Lookup::Found(key) = self.lookup(kid, false) {
            return Ok(key);
        }
        let _one_fetch = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        match self.lookup(kid, true) {
            Lookup::Found(key) => Ok(key),
            Lookup::Unknown => Err(JwksError::UnknownKey(kid.to_owned())),
            Lookup::Fetch => {
                let fetched = self.fetch().await;
                let now = self.clock.now();
                let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
                match fetched {
                    Ok(keys) => {
                        cached.keys = Arc::new(keys);
                        cached.fetched_at = Some(now);
                    }
                    Err(error) if cached.keys.is_empty() => return Err(error),
                    Err(error) => {
                        tracing::warn!(%error, "could not refresh the provider's keys; using the cached ones");
                        if cached.fetched_at.is_none_or(|at| now.since(at) >= REFRESH_AFTER) {
                            // Tried again after the unknown-kid interval, not by every sign-in meanwhile.
                            let retry_at = now + UNKNOWN_KID_REFETCH_INTERVAL;
                            cached.fetched_at = Some(retry_at - REFRESH_AFTER);
                        }
                        // A key that is not cached could not be looked up: the provider's fault, not the token's.
                        return cached.keys.get(kid).cloned().ok_or(error);
                    }
                }
                cached.keys.get(kid).cloned().ok_or_else(|| JwksError::UnknownKey(kid.to_owned()))
            }
        }
    }

    /// Looks `kid` up; with `claim_fetch`, a fetch for an unknown id is recorded against the throttle.
    fn lookup(&self, kid: &str, claim_fetch: bool) -> Lookup {
        let now = self.clock.now();
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let stale = cached.fetched_at.is_none_or(|at| now.since(at) >= REFRESH_AFTER);
        match cached.keys.get(kid) {
            Some(key) if !stale => Lookup::Found(key.clone()),
            _ if stale => Lookup::Fetch,
            _ => {
                let may_refetch =
                    cached.last_unknown_kid_fetch.is_none_or(|at| now.since(at) >= UNKNOWN_KID_REFETCH_INTERVAL);
                if !may_refetch {
                    return Lookup::Unknown;
                }
                if claim_fetch {
                    cached.last_unknown_kid_fetch = Some(now);
                }
                Lookup::Fetch
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<ProviderKey>>, JwksError> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = self.http.get(&self.url).send().await.map_err(|e| JwksError::Fetch(crate::call_failure(e)))?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("HTTP {}", response.status())));
        }
        let document: JwkSetDocument = response.json().await.map_err(|e| JwksError::Fetch(crate::call_failure(e)))?;
        Ok(document
            .keys
            .into_iter()
            .filter(|jwk| jwk.kty == "RSA" && jwk.key_use.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|jwk| {
                let kid = jwk.kid?;
                let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
                Some((kid.clone(), Arc::new(ProviderKey { kid, issuer: jwk.issuer, key })))
            })
            .collect())
    }
}
