//! Fixed-window counters per key, in this instance's memory or in Redis shared by every instance
//! (`rate_limiter.store`). The window arithmetic is [`gatehouse_core::rate_limit`]'s; time comes from an injected
//! [`Clock`], and windows are aligned to the epoch, so instances sharing Redis agree on them.
//!
//! **When Redis cannot be reached, the limiter fails open**: the attempt is not counted, and a warning is logged.
//! What it limits are *failed* token exchanges (see [`crate::token_exchange::TokenExchange`]): a valid token
//! never waits for it, and tokens are 256-bit values, so a Redis outage lets junk through uncounted but can
//! neither stop a sign-in nor make a token guessable. Failing closed would answer every mistyped or expired token
//! with 429 for the length of the outage, for nothing in exchange.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use gatehouse_core::{
    config::{RateLimitStore, RedisConfig},
    rate_limit::{FixedWindow, RateDecision, Window},
};
use redis::{
    IntoConnectionInfo, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use gatehouse_core::clock::Clock;

/// How long one Redis call may take before the attempt goes uncounted.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct RateLimiter {
    rule: FixedWindow,
    counter: Counter,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
enum Counter {
    InMemory(MemoryCounter),
    Redis(RedisCounter),
}

impl RateLimiter {
    /// A limiter of `rule` counting in `store`. Redis is connected lazily: an instance starts while it is down.
    pub fn new(
        rule: FixedWindow,
        store: RateLimitStore,
        redis: &RedisConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let counter = match store {
            RateLimitStore::InMemory => Counter::InMemory(MemoryCounter::default()),
            RateLimitStore::Redis => Counter::Redis(RedisCounter::new(redis)?),
        };
        Ok(Self { rule, counter, clock })
    }

    /// Counts one event for `key`. `None` when it could not be counted (Redis unreachable): the caller goes on as
    /// if under the limit.
    pub async fn count(&self, key: &str) -> Option<RateDecision> {
        let now = self.clock.now();
        let window = self.rule.window_at(now);
        let count = match &self.counter {
            Counter::InMemory(counter) => counter.increment(key, window),
            Counter::Redis(counter) => match counter.increment(key, window, self.rule.interval_ms).await {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(%error, "the rate-limit store is unreachable; this attempt is not counted");
                    return None;
                }
            },
        };
        Some(self.rule.decide(count, window, now))
    }
}

/// Counts per key for the current window only.
#[derive(Debug, Default)]
struct MemoryCounter {
    counts: Mutex<HashMap<String, (i64, u64)>>,
}

impl MemoryCounter {
    /// Past this many keys, those of past windows are dropped.
    const PRUNE_AT: usize = 10_000;

    fn increment(&self, key: &str, window: Window) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() > Self::PRUNE_AT {
            counts.retain(|_, (index, _)| *index == window.index);
        }
        let entry = counts.entry(key.to_owned()).or_insert((window.index, 0));
        if entry.0 != window.index {
            *entry = (window.index, 0);
        }
        entry.1 += 1;
        entry.1
    }
}

/// One Redis key per key and window, incremented and given its expiry in one step (a script runs atomically).
/// The expiry only cleans up; the window's index in the key is what starts a new count.
struct RedisCounter {
    connection: ConnectionManager,
    key_prefix: String,
    increment: Script,
}

impl std::fmt::Debug for RedisCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounter").field("key_prefix", &self.key_prefix).finish_non_exhaustive()
    }
}

impl RedisCounter {
    fn new(config: &RedisConfig) -> Result<Self, String> {
        let (host, port) = config.host_and_port()?;
        let mut info = (host, port).into_connection_info().map_err(|error| error.to_string())?;
        if let Some(password) = &config.password {
            info = info.clone().set_redis_settings(info.redis_settings().clone().set_password(password.expose()));
        }
        let client = redis::Client::open(info).map_err(|error| error.to_string())?;
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, settings).map_err(|error| error.to_string())?;
        let increment = Script::new(
            "local count = redis.call('INCR', KEYS[1]) \
             if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
             return count",
        );
        Ok(Self { connection, key_prefix: config.key_prefix.clone(), increment })
    }

    async fn increment(&self, key: &str, window: Window, interval_ms: i64) -> redis::RedisResult<u64> {
        let key = format!("{}rate_limit:{key}:{}", self.key_prefix, window.index);
        // Twice the interval: an instance whose clock lags a little still finds the window's count.
        let expiry_ms = interval_ms.saturating_mul(2);
        let mut connection = self.connection.clone();
        self.increment.key(key).arg(expiry_ms).invoke_async(&mut connection).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::clock::{ManualClock, Timestamp};

    const RULE: FixedWindow = FixedWindow { limit: 2, interval_ms: 60_000 };

    fn redis_config(address: &str) -> RedisConfig {
        RedisConfig {
            address: address.into(),
            key_prefix: format!("test:{}:", uuid::Uuid::new_v4()),
            ..Default::default()
        }
    }

    async fn limits_per_key_and_resets(store: RateLimitStore, redis: &RedisConfig) {
        let clock = Arc::new(ManualClock::default());
        clock.set(Timestamp::from_millis(1_000));
        let limiter = RateLimiter::new(RULE, store, redis, clock.clone()).unwrap();
        let allowed = |decision: Option<RateDecision>| decision.expect("counted").allowed;
        assert!(allowed(limiter.count("a").await));
        let second = limiter.count("a").await.unwrap();
        assert_eq!((second.allowed, second.remaining, second.reset_secs), (true, 0, 59));
        clock.set(Timestamp::from_millis(59_500));
        let third = limiter.count("a").await.unwrap();
        assert_eq!((third.allowed, third.reset_secs), (false, 1), "500 ms left rounds up to 1 s");
        assert!(allowed(limiter.count("b").await), "keys are independent");
        clock.set(Timestamp::from_millis(60_000));
        assert!(allowed(limiter.count("a").await), "a new window");
    }

    #[tokio::test]
    async fn in_memory_limits_per_key_and_resets() {
        limits_per_key_and_resets(RateLimitStore::InMemory, &RedisConfig::default()).await;
    }

    #[tokio::test]
    async fn redis_limits_per_key_and_resets() {
        limits_per_key_and_resets(RateLimitStore::Redis, &redis_config("127.0.0.1:6379")).await;
    }

    #[tokio::test]
    async fn instances_sharing_redis_share_the_count() {
        let clock = Arc::new(ManualClock::default());
        let redis = redis_config("127.0.0.1:6379");
        let first = RateLimiter::new(RULE, RateLimitStore::Redis, &redis, clock.clone()).unwrap();
        let second = RateLimiter::new(RULE, RateLimitStore::Redis, &redis, clock).unwrap();
        assert!(first.count("a").await.unwrap().allowed);
        assert!(second.count("a").await.unwrap().allowed);
        assert!(!first.count("a").await.unwrap().allowed);
    }

    #[tokio::test]
    async fn an_unreachable_redis_counts_nothing() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let limiter = RateLimiter::new(
            RULE,
            RateLimitStore::Redis,
            &redis_config(&closed.to_string()),
            Arc::new(ManualClock::default()),
        )
        .unwrap();
        for _ in 0..3 {
            let counted = tokio::time::timeout(Duration::from_secs(30), limiter.count("a")).await;
            assert_eq!(counted, Ok(None), "uncounted, and the call does not hang");
        }
    }
}
