//! Fixed-window rate limits: the arithmetic, shared by every store that counts.
//!
//! Windows are aligned to the Unix epoch (`now / interval`), so every instance (and a shared store such as Redis)
//! agrees on which window a moment belongs to without agreeing on when a client's first attempt was.

use crate::clock::Timestamp;

/// At most `limit` counted events per `interval_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    pub limit: u32,
    pub interval_ms: i64,
}

/// The window a moment falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The same on every instance for the same moment: part of the counter's key.
    pub index: i64,
    pub ends_at: Timestamp,
}

/// The verdict for one counted event, and what the `X-RateLimit-*` and `Retry-After` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds until the window ends, rounded up and never 0: a client that waits this long is past it.
    pub reset_secs: u64,
}

impl FixedWindow {
    pub fn window_at(&self, now: Timestamp) -> Window {
        let interval_ms = self.interval_ms.max(1);
        let index = now.as_millis().div_euclid(interval_ms);
        Window { index, ends_at: Timestamp::from_millis((index + 1).saturating_mul(interval_ms)) }
    }

    /// The verdict at `now` for the `count`th event of `window` (counting this one).
    pub fn decide(&self, count: u64, window: Window, now: Timestamp) -> RateDecision {
        let left_ms = u64::try_from(window.ends_at.since(now).as_millis()).unwrap_or(u64::MAX);
        RateDecision {
            allowed: count <= u64::from(self.limit),
            limit: self.limit,
            remaining: u32::try_from(u64::from(self.limit).saturating_sub(count)).unwrap_or_default(),
            reset_secs: left_ms.div_ceil(1000).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    const MINUTE: FixedWindow = FixedWindow { limit: 3, interval_ms: 60_000 };

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        assert_eq!(MINUTE.window_at(at(0)), Window { index: 0, ends_at: at(60_000) });
        assert_eq!(MINUTE.window_at(at(59_999)), Window { index: 0, ends_at: at(60_000) });
        assert_eq!(MINUTE.window_at(at(60_000)), Window { index: 1, ends_at: at(120_000) });
    }

    #[test]
    fn the_limit_allows_that_many_then_refuses() {
        let window = MINUTE.window_at(at(1_000));
        let verdicts: Vec<(bool, u32)> =
            (1..=5).map(|count| MINUTE.decide(count, window, at(1_000))).map(|d| (d.allowed, d.remaining)).collect();
        assert_eq!(verdicts, vec![(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]);
    }

    #[test]
    fn reset_rounds_up_and_is_never_zero() {
        let window = MINUTE.window_at(at(120_500));
        assert_eq!(MINUTE.decide(4, window, at(120_500)).reset_secs, 60, "59.5 s left: wait 60");
        assert_eq!(MINUTE.decide(4, window, at(179_001)).reset_secs, 1, "999 ms left: wait 1");
        assert_eq!(MINUTE.decide(4, window, at(179_999)).reset_secs, 1, "1 ms left: still wait 1");
        assert_eq!(MINUTE.decide(4, window, at(121_000)).reset_secs, 59);
    }

    proptest! {
        #[test]
        fn waiting_reset_secs_always_reaches_the_next_window(now in 0i64..1 << 50, interval_secs in 1i64..86_400) {
            let rule = FixedWindow { limit: 1, interval_ms: interval_secs * 1000 };
            let window = rule.window_at(at(now));
            let reset_secs = rule.decide(2, window, at(now)).reset_secs;
            prop_assert!(reset_secs >= 1);
            prop_assert!(rule.window_at(at(now + i64::try_from(reset_secs).unwrap() * 1000)).index > window.index);
            prop_assert!(i64::try_from(reset_secs).unwrap() <= interval_secs);
        }
    }
}
