//! A provider's signing keys, cached. Steady state costs no request: keys are refetched once a day, or when a
//! token names a key we have not seen (a rollover) — and then at most once per interval, so that tokens with
//! made-up key ids cannot make us hammer the provider.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

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
    keys: HashMap<String, Arc<ProviderKey>>,
    fetched_at: Option<Instant>,
    last_unknown_kid_fetch: Option<Instant>,
}

/// The cached key set of one JWKS URL.
pub struct JwksCache {
    http: reqwest::Client,
    url: String,
    cached: tokio::sync::Mutex<Cached>,
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("url", &self.url).finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(http: reqwest::Client, url: String) -> Self {
        Self { http, url, cached: tokio::sync::Mutex::new(Cached::default()), fetches: Default::default() }
    }

    /// How many times the keys were fetched; for tests and metrics.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key with this `kid`, fetching the key set if it is stale or the key is new to us.
    pub async fn key(&self, kid: &str) -> Result<Arc<ProviderKey>, JwksError> {
        let mut cached = self.cached.lock().await;
        let stale = cached.fetched_at.is_none_or(|at| at.elapsed() >= REFRESH_AFTER);
        if stale {
            self.refetch(&mut cached).await?;
        }
        if let Some(key) = cached.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch =
            !stale && cached.last_unknown_kid_fetch.is_none_or(|at| at.elapsed() >= UNKNOWN_KID_REFETCH_INTERVAL);
        if may_refetch {
            cached.last_unknown_kid_fetch = Some(Instant::now());
            self.refetch(&mut cached).await?;
        }
        cached.keys.get(kid).cloned().ok_or_else(|| JwksError::UnknownKey(kid.to_owned()))
    }

    async fn refetch(&self, cached: &mut Cached) -> Result<(), JwksError> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = self.http.get(&self.url).send().await.map_err(|e| JwksError::Fetch(crate::call_failure(e)))?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("HTTP {}", response.status())));
        }
        let document: JwkSetDocument = response.json().await.map_err(|e| JwksError::Fetch(crate::call_failure(e)))?;
        cached.keys = document
            .keys
            .into_iter()
            .filter(|jwk| jwk.kty == "RSA" && jwk.key_use.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|jwk| {
                let kid = jwk.kid?;
                let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
                Some((kid.clone(), Arc::new(ProviderKey { kid, issuer: jwk.issuer, key })))
            })
            .collect();
        cached.fetched_at = Some(Instant::now());
        Ok(())
    }
}
