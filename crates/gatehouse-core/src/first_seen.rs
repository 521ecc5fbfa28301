//! Remembering which values were already seen, so that a warning about each is logged once.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};

/// How many distinct values a [`FirstSeen`] remembers. Past this, nothing more is remembered or reported as new, so
/// made-up values (any client can send any origin or target) can grow neither memory nor the log.
pub const REMEMBERED_VALUES: usize = 256;

/// A bounded set of values seen so far.
#[derive(Debug, Default)]
pub struct FirstSeen {
    seen: Mutex<HashSet<String>>,
}

impl FirstSeen {
    /// Whether `value` is seen here for the first time, remembering it. Only the first 200 characters count; and
    /// once [`REMEMBERED_VALUES`] values are remembered, every value is "not new".
    pub fn is_new(&self, value: &str) -> bool {
        let value: String = value.chars().take(200).collect();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.len() < REMEMBERED_VALUES && seen.insert(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_is_new_once_and_memory_is_bounded() {
        let seen = FirstSeen::default();
        assert!(seen.is_new("https://a.example"));
        assert!(!seen.is_new("https://a.example"));
        for i in 1..REMEMBERED_VALUES {
            assert!(seen.is_new(&format!("https://{i}.example")));
        }
        assert!(!seen.is_new("https://one-too-many.example"), "full: nothing more is remembered");
        assert_eq!(seen.seen.lock().unwrap().len(), REMEMBERED_VALUES);
    }
}
