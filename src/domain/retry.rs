//! The one retry rule every delivery channel follows (Web Push, SMS, and
//! whatever comes next): how long to wait before the next try, and when to
//! give up.

use chrono::{DateTime, Duration, Utc};

/// How many tries a delivery gets before it is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The wait before try `attempts + 1`: 30 s, doubling, at most an hour.
pub fn backoff(attempts: u32) -> Duration {
    Duration::seconds((30i64 << attempts.min(7)).min(3600))
}

/// What follows a failed try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(DateTime<Utc>),
    /// That was the last try.
    GiveUp,
}

/// After try number `attempts + 1` failed at `now`: the next try after the
/// backoff, but never sooner than `at_least` (a service's `Retry-After`, a
/// provider's window; at most a day); or give up after [`MAX_ATTEMPTS`].
pub fn next_try(attempts: u32, at_least: Duration, now: DateTime<Utc>) -> Retry {
    if attempts + 1 >= MAX_ATTEMPTS {
        return Retry::GiveUp;
    }
    Retry::At(now + backoff(attempts).max(at_least.min(Duration::days(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30_s_to_an_hour_and_gives_up_after_max_attempts() {
        let secs: Vec<i64> = (0..10).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(
            next_try(2, Duration::zero(), now),
            Retry::At(now + Duration::seconds(120))
        );
        // A floor longer than the backoff wins; a shorter one does not.
        assert_eq!(
            next_try(0, Duration::seconds(600), now),
            Retry::At(now + Duration::seconds(600))
        );
        assert_eq!(
            next_try(0, Duration::seconds(1), now),
            Retry::At(now + Duration::seconds(30))
        );
        // A floor is capped at a day.
        assert_eq!(
            next_try(0, Duration::days(30), now),
            Retry::At(now + Duration::days(1))
        );
        assert_eq!(
            next_try(MAX_ATTEMPTS - 2, Duration::zero(), now),
            Retry::At(now + Duration::seconds(1920))
        );
        assert_eq!(
            next_try(MAX_ATTEMPTS - 1, Duration::zero(), now),
            Retry::GiveUp
        );
    }
}
