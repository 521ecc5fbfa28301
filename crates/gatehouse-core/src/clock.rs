//! Time, injected: everything time-based (session `iat`/`exp`, ID-token checks, state and one-time-token expiry,
//! key and JWKS refresh, rate-limit windows, sweeps, credential expiry) reads a [`Clock`] it was handed, so tests
//! move time instead of sleeping. [`SystemClock`] is the only place that reads the wall clock.
//!
//! [`Timestamp`] is the one representation of a point in time: records, the store's columns and the clock all
//! count unix milliseconds. Protocol fields that count seconds (`iat`, `exp`, `nbf`) convert where they are read
//! or written.

use std::{
    fmt,
    ops::{Add, Sub},
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A point in time, in unix milliseconds (also as JSON, where it is stored inside documents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const UNIX_EPOCH: Self = Self(0);

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down (also before 1970).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Milliseconds from `earlier` to this; negative when this is before it.
    pub const fn millis_after(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// RFC 3339 in UTC, as Hanko's JSON writes times.
    pub fn rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default()
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(millis(duration)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(millis(duration)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(SystemTime::now().duration_since(UNIX_EPOCH).map(millis).unwrap_or_default())
    }
}

/// A clock for tests: it stands still until set or advanced.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: Timestamp) -> Self {
        Self(AtomicI64::new(now.0))
    }

    /// A manual clock that starts at the wall clock's time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    pub fn set(&self, now: Timestamp) {
        self.0.store(now.0, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(millis(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_millis(1_500));
        assert_eq!((clock.now().as_millis(), clock.now().as_secs()), (1_500, 1));
        clock.advance(Duration::from_millis(2_600));
        assert_eq!((clock.now().as_millis(), clock.now().as_secs()), (4_100, 4));
        clock.set(Timestamp::from_millis(-1));
        assert_eq!(clock.now().as_secs(), -1, "before 1970 rounds down, not toward zero");
    }

    #[test]
    fn the_system_clock_and_a_clock_starting_now_read_the_wall_clock() {
        let wall = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        for read in [SystemClock.now(), ManualClock::starting_now().now()] {
            assert!((read.as_millis() - wall).abs() < 60_000, "{read} is not the wall clock's {wall}");
        }
    }

    #[test]
    fn timestamps_move_by_durations_and_never_overflow() {
        let t = Timestamp::from_secs(10);
        assert_eq!((t + Duration::from_millis(1_500)).as_millis(), 11_500);
        assert_eq!((t - Duration::from_secs(11)).as_millis(), -1_000);
        assert_eq!((t + Duration::from_millis(1_500)).since(t), Duration::from_millis(1_500));
        assert_eq!(t.since(t + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!((t - Duration::from_secs(1)).millis_after(t), -1_000);
        assert_eq!(Timestamp::from_millis(i64::MAX) + Duration::from_secs(1), Timestamp::from_millis(i64::MAX));
        assert_eq!(Timestamp::from_millis(i64::MIN) - Duration::from_secs(1), Timestamp::from_millis(i64::MIN));
        assert_eq!(Timestamp::from_secs(i64::MAX).as_millis(), i64::MAX);
    }

    #[test]
    fn times_render_as_hanko_writes_them() {
        assert_eq!(Timestamp::UNIX_EPOCH.rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_millis(1_700_000_000_123).to_string(), "2023-11-14T22:13:20.123Z");
    }
}
