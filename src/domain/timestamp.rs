//! Timestamps as the API writes them: RFC 3339 in UTC with exactly
//! millisecond precision (`2026-12-05T08:00:00.000Z`), whatever precision
//! the clock or the database kept, so that every client's decoder reads
//! every timestamp the same way. Used as `#[serde(serialize_with = …)]`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// `2026-12-05T08:00:00.123Z`: sub-millisecond digits are dropped.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn ms<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

pub fn ms_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ms(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn always_three_fractional_digits_in_utc() {
        let whole = Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0).unwrap();
        assert_eq!(format(&whole), "2026-12-05T08:00:00.000Z");
        let fine = whole + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(format(&fine), "2026-12-05T08:00:00.123Z");
        let json = serde_json::to_string(&Stamped {
            at: fine,
            maybe: None,
        })
        .unwrap();
        assert_eq!(json, r#"{"at":"2026-12-05T08:00:00.123Z","maybe":null}"#);
    }

    #[derive(serde::Serialize)]
    struct Stamped {
        #[serde(serialize_with = "ms")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "ms_opt")]
        maybe: Option<DateTime<Utc>>,
    }
}
