//! Time, injected: everything time-based (session `iat`/`exp`, ID-token checks, state and one-time-token expiry,
//! key and JWKS refresh, rate-limit windows, sweeps, credential expiry) reads a [`Clock`] it was handed, so tests
//! move time instead of sleeping. [`SystemClock`] is the only place that reads the wall clock.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;

    /// Unix time in seconds.
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
    }
}

/// A clock for tests: it stands still until set or advanced.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self(AtomicI64::new(now_ms))
    }

    /// A manual clock that starts at the wall clock's time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now_ms())
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 (UTC) for a unix time in seconds, as Hanko's JSON writes times.
pub fn rfc3339_secs(secs: i64) -> String {
    rfc3339_ms(secs.saturating_mul(1000))
}

/// RFC 3339 (UTC) for a unix time in milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_500);
        assert_eq!((clock.now_ms(), clock.now_secs()), (1_500, 1));
        clock.advance(std::time::Duration::from_millis(2_600));
        assert_eq!((clock.now_ms(), clock.now_secs()), (4_100, 4));
        clock.set(-1);
        assert_eq!(clock.now_secs(), -1, "before 1970 rounds down, not toward zero");
    }

    #[test]
    fn the_system_clock_and_a_clock_starting_now_read_the_wall_clock() {
        let wall = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        for read in [SystemClock.now_ms(), ManualClock::starting_now().now_ms()] {
            assert!((read - wall).abs() < 60_000, "{read} is not the wall clock's {wall}");
        }
    }

    #[test]
    fn times_render_as_hanko_writes_them() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
