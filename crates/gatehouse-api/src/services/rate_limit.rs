//! A per-key fixed-window rate limiter, kept in this instance's memory.
//!
//! With several instances behind a load balancer, each enforces the limit on its own, so a client may get up to
//! `instances × limit` attempts per window. For the one thing limited here (redeeming one-time tokens, which are
//! 256-bit random values that live a minute) that bound is still far beyond guessing range; README says so.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The verdict for one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt for `key`.
    pub fn check(&self, key: &str) -> RateDecision {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        let reset_secs = self.window.saturating_sub(now.duration_since(entry.0)).as_secs().max(1);
        if entry.1 >= self.limit {
            return RateDecision { allowed: false, limit: self.limit, remaining: 0, reset_secs };
        }
        entry.1 += 1;
        RateDecision { allowed: true, limit: self.limit, remaining: self.limit - entry.1, reset_secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_resets() {
        let limiter = RateLimiter::new(2, Duration::from_millis(50));
        assert!(limiter.check("a").allowed);
        assert_eq!(limiter.check("a").remaining, 0);
        assert!(!limiter.check("a").allowed);
        assert!(limiter.check("b").allowed, "keys are independent");
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.check("a").allowed, "a new window");
    }
}
