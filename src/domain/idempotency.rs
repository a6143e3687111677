//! The Idempotency-Key protocol: a client that retries a request with the
//! same key gets the first answer back instead of a second execution. The
//! store keeps one record per (person, key) with a hash of the request and
//! the answer; this module decides what a record means.

use chrono::{DateTime, Duration, Utc};

/// How long a key answers for its first request.
pub const KEY_TTL: Duration = Duration::hours(24);

/// A stored answer to a keyed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// A hash of what the request said (method target and body).
    pub request_hash: String,
    /// The answer, serialized.
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// What to do with a keyed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay<'a> {
    /// The key is new (or its record has expired): decide the request anew.
    Fresh,
    /// The same request again: answer with this, changing nothing.
    Answer(&'a str),
    /// The key was used for a different request: refuse.
    KeyReuse,
}

/// Judge a keyed request against the record found for its key, if any.
pub fn judge<'a>(
    record: Option<&'a IdempotencyRecord>,
    request_hash: &str,
    now: DateTime<Utc>,
) -> Replay<'a> {
    match record {
        Some(r) if now - r.created_at < KEY_TTL => {
            if r.request_hash == request_hash {
                Replay::Answer(&r.body)
            } else {
                Replay::KeyReuse
            }
        }
        _ => Replay::Fresh,
    }
}

/// Records created before this answer nothing and may be purged.
pub fn expired_before(now: DateTime<Utc>) -> DateTime<Utc> {
    now - KEY_TTL
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_key_replays_its_request_for_a_day_and_refuses_others() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
        let r = IdempotencyRecord {
            request_hash: "h1".into(),
            body: "{}".into(),
            created_at: t0,
        };
        assert_eq!(judge(None, "h1", t0), Replay::Fresh);
        assert_eq!(
            judge(Some(&r), "h1", t0 + Duration::hours(23)),
            Replay::Answer("{}")
        );
        assert_eq!(judge(Some(&r), "h2", t0), Replay::KeyReuse);
        assert_eq!(judge(Some(&r), "h1", t0 + KEY_TTL), Replay::Fresh);
        assert_eq!(judge(Some(&r), "h2", t0 + KEY_TTL), Replay::Fresh);
        assert!(expired_before(t0 + KEY_TTL) == t0);
    }
}
