//! Sign-in code rules: how many codes a phone or a client address may ask
//! for, and what a presented code comes to. The store reads the recent
//! requests and the stored code inside one write transaction and applies what
//! these functions decide.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The outcome of checking a sign-in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpCheck {
    /// Right: the code is used up.
    Ok,
    Wrong {
        attempts_left: i64,
    },
    Expired,
    /// Too many wrong tries: the code is dead.
    Locked,
    /// No code was requested (or it was used).
    Missing,
}

/// A stored code: its hash, when it dies, how many wrong tries it has had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub code_hash: String,
    pub expires_at: DateTime<Utc>,
    pub attempts: i64,
    /// The code itself: kept only with the development `log` SMS provider,
    /// for `yizhan admin code`; never with a real provider.
    pub dev_code: Option<String>,
}

/// The development code a person could still sign in with: not expired, not locked.
pub fn pending_dev_code(
    stored: Option<&StoredCode>,
    now: DateTime<Utc>,
    max_attempts: i64,
) -> Option<&str> {
    let c = stored?;
    (now < c.expires_at && c.attempts < max_attempts)
        .then_some(c.dev_code.as_deref())
        .flatten()
}

/// What checking a code changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeEffect {
    /// The right code: delete it, so it signs in once.
    Consume,
    /// A wrong try: count it.
    CountWrongTry,
}

/// Check `presented` (a code hash) against the stored code.
pub fn check_code(
    stored: Option<&StoredCode>,
    presented: &str,
    now: DateTime<Utc>,
    max_attempts: i64,
) -> (OtpCheck, Option<CodeEffect>) {
    let Some(c) = stored else {
        return (OtpCheck::Missing, None);
    };
    if c.attempts >= max_attempts {
        (OtpCheck::Locked, None)
    } else if now >= c.expires_at {
        (OtpCheck::Expired, None)
    } else if super::secret::same(c.code_hash.as_bytes(), presented.as_bytes()) {
        (OtpCheck::Ok, Some(CodeEffect::Consume))
    } else {
        (
            OtpCheck::Wrong {
                attempts_left: max_attempts - c.attempts - 1,
            },
            Some(CodeEffect::CountWrongTry),
        )
    }
}

/// How far back the store must read requests to judge `limits`, and how many.
pub fn lookback(limits: &[(i64, Duration)]) -> (Duration, i64) {
    let window = limits.iter().map(|l| l.1).max().unwrap_or_default();
    let count = limits.iter().map(|l| l.0).max().unwrap_or(0);
    (window, count)
}

/// The wait before one more request may pass, given the times of the recent
/// requests of one phone or address (newest first) and its `(max, window)`
/// limits; `None` when it may pass now.
pub fn rate_limit(
    recent: &[DateTime<Utc>],
    limits: &[(i64, Duration)],
    now: DateTime<Utc>,
) -> Option<Duration> {
    let mut wait = Duration::ZERO;
    for &(max, window) in limits {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let in_window: Vec<_> = recent.iter().filter(|t| **t > now - window).collect();
        // The `max`-th most recent request in the window decides when the next may pass.
        if let Some(t) = usize::try_from(max - 1).ok().and_then(|i| in_window.get(i)) {
            let until = (**t + window - now).to_std().unwrap_or_default();
            wait = wait.max(until);
        }
    }
    (!wait.is_zero()).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn limits_count_requests_in_each_window() {
        let limits = [(1, Duration::from_secs(60)), (5, Duration::from_secs(3600))];
        assert_eq!(rate_limit(&[], &limits, at(0)), None);
        // One a minute: 20 s after the last, wait 40 s more.
        assert_eq!(
            rate_limit(&[at(-20)], &limits, at(0)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(rate_limit(&[at(-60)], &limits, at(0)), None);
        // Five an hour: the fifth most recent decides.
        let five: Vec<_> = (1..=5).map(|i| at(-600 * i)).collect();
        assert_eq!(
            rate_limit(&five, &limits, at(0)),
            Some(Duration::from_secs(600))
        );
        assert_eq!(lookback(&limits), (Duration::from_secs(3600), 5));
    }

    #[test]
    fn a_code_signs_in_once_and_dies_of_wrong_tries_or_age() {
        let c = StoredCode {
            code_hash: "right".into(),
            expires_at: at(300),
            attempts: 0,
            dev_code: None,
        };
        assert_eq!(check_code(None, "right", at(0), 5).0, OtpCheck::Missing);
        assert_eq!(
            check_code(Some(&c), "right", at(0), 5),
            (OtpCheck::Ok, Some(CodeEffect::Consume))
        );
        assert_eq!(
            check_code(Some(&c), "wrong", at(0), 5),
            (
                OtpCheck::Wrong { attempts_left: 4 },
                Some(CodeEffect::CountWrongTry)
            )
        );
        assert_eq!(
            check_code(Some(&c), "right", at(300), 5).0,
            OtpCheck::Expired
        );
        let locked = StoredCode { attempts: 5, ..c };
        assert_eq!(
            check_code(Some(&locked), "right", at(0), 5).0,
            OtpCheck::Locked
        );
    }

    #[test]
    fn a_development_code_is_pending_only_while_it_could_sign_in() {
        let c = StoredCode {
            code_hash: "h".into(),
            expires_at: at(300),
            attempts: 0,
            dev_code: Some("123456".into()),
        };
        assert_eq!(pending_dev_code(Some(&c), at(0), 5), Some("123456"));
        assert_eq!(pending_dev_code(Some(&c), at(300), 5), None);
        let locked = StoredCode {
            attempts: 5,
            ..c.clone()
        };
        assert_eq!(pending_dev_code(Some(&locked), at(0), 5), None);
        let real = StoredCode {
            dev_code: None,
            ..c
        };
        assert_eq!(pending_dev_code(Some(&real), at(0), 5), None);
        assert_eq!(pending_dev_code(None, at(0), 5), None);
    }
}
