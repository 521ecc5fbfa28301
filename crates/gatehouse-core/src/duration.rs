//! Go-style durations (`"12h"`, `"1m30s"`, `"500ms"`), because Hanko's configuration is written in them.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way Hanko's config writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason} (write it like \"12h\", \"30m\", \"1h30m\" or \"500ms\")")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl GoDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError { input: input.to_owned(), reason };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("empty"));
        }
        if text == "0" {
            return Ok(Self(Duration::ZERO));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
            if digits == 0 {
                return Err(fail("expected a number"));
            }
            let number: f64 = rest[..digits].parse().map_err(|_| fail("bad number"))?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let nanos_per_unit: f64 = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err(fail("missing unit")),
                _ => return Err(fail("unknown unit (use ns, us, ms, s, m or h)")),
            };
            rest = &rest[unit_len..];
            let nanos = number * nanos_per_unit;
            if !nanos.is_finite() || nanos > u64::MAX as f64 {
                return Err(fail("too large"));
            }
            total = total.checked_add(Duration::from_nanos(nanos as u64)).ok_or_else(|| fail("too large"))?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d.subsec_nanos() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (text, secs) in [("12h", 43_200), ("1m", 60), ("1h30m", 5_400), ("90s", 90), ("0", 0), ("720h", 2_592_000)]
        {
            assert_eq!(text.parse::<GoDuration>().unwrap().as_secs(), secs, "{text}");
        }
        assert_eq!("500ms".parse::<GoDuration>().unwrap().0, Duration::from_millis(500));
        assert_eq!("1.5h".parse::<GoDuration>().unwrap().as_secs(), 5_400);
    }

    #[test]
    fn refuses_garbage() {
        for text in ["", "h", "12", "12x", "-1h", "1h-", "abc"] {
            assert!(text.parse::<GoDuration>().is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn displays_round_trip() {
        for text in ["12h", "1h30m", "45s", "500ms", "0s", "1h0m5s"] {
            let parsed: GoDuration = text.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<GoDuration>().unwrap(), parsed);
        }
    }
}
