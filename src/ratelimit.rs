//! Token buckets keyed by who is asking (a client address, a user): the
//! limits on writes. No I/O and no clock of its own — the caller passes
//! `now` — so the tests below run without sleeping.
//!
//! A bucket holds up to `per_minute` tokens and refills at `per_minute / 60`
//! a second: a client may burst a minute's worth, then keeps to the rate.
//! The map is bounded (`max_keys`): a full bucket carries no information and
//! is forgotten first; if every tracked key is active, a newcomer is let
//! through untracked (fail open — the concurrency limit still bounds the
//! load) rather than growing memory without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct KeyedBuckets<K> {
    per_sec: f64,
    burst: f64,
    max_keys: usize,
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    buckets: HashMap<K, Bucket>,
    /// When full buckets were last swept out (at most once a second).
    swept: Option<Instant>,
}

impl<K: Eq + Hash> KeyedBuckets<K> {
    /// `per_minute` (at least 1) tokens a minute per key, bursts of as many;
    /// at most `max_keys` keys tracked.
    pub fn new(per_minute: u32, max_keys: usize) -> KeyedBuckets<K> {
        let per_minute = f64::from(per_minute.max(1));
        KeyedBuckets {
            per_sec: per_minute / 60.0,
            burst: per_minute,
            max_keys: max_keys.max(1),
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                swept: None,
            }),
        }
    }

    /// Take a token for `key` at `now`: `Err(wait)` when there is none, with
    /// how long until there is.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.buckets.len() >= self.max_keys && !inner.buckets.contains_key(&key) {
            let due = inner
                .swept
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if due {
                let (rate, burst) = (self.per_sec, self.burst);
                inner.buckets.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
                });
                inner.swept = Some(now);
            }
            if inner.buckets.len() >= self.max_keys {
                return Ok(());
            }
        }
        let b = inner.buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole seconds to put in `Retry-After` for a wait (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_a_minutes_worth_then_the_rate() {
        let b = KeyedBuckets::new(6, 100);
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(b.check("a", t0), Ok(()));
        }
        // Empty: one token comes back every 10 s.
        let wait = b.check("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(b.check("a", t0 + Duration::from_secs(9)).is_err());
        assert_eq!(b.check("a", t0 + Duration::from_secs(10)), Ok(()));
        assert!(b.check("a", t0 + Duration::from_secs(10)).is_err());
        // Another key has its own bucket.
        assert_eq!(b.check("b", t0), Ok(()));
    }

    #[test]
    fn refills_to_the_burst_and_no_further() {
        let b = KeyedBuckets::new(2, 100);
        let t0 = Instant::now();
        assert!(b.check(1, t0).is_ok());
        let later = t0 + Duration::from_secs(3600);
        assert!(b.check(1, later).is_ok());
        assert!(b.check(1, later).is_ok());
        assert!(b.check(1, later).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let b = KeyedBuckets::new(60, 3);
        let t0 = Instant::now();
        for k in 0..3 {
            assert!(b.check(k, t0).is_ok());
        }
        // All three are active: a fourth is let through untracked.
        assert!(b.check(3, t0).is_ok());
        assert_eq!(b.len(), 3);
        // Once they have refilled they are forgotten and the newcomer tracked.
        let later = t0 + Duration::from_secs(2);
        assert!(b.check(4, later).is_ok());
        assert_eq!(b.len(), 1);
        for k in 0..100 {
            let _ = b.check(k, later + Duration::from_secs(2 * k));
            assert!(b.len() <= 3);
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(10)), 10);
        assert_eq!(retry_after_secs(Duration::from_millis(10_001)), 11);
    }
}
