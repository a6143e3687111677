//! Opaque identifiers: a random 60-bit integer inside (ids cannot be
//! enumerated and are cheap to index), outside a one-letter prefix and 12
//! lowercase Crockford base32 digits, such as `s3k9v0q2m7x1c`.

pub(crate) const B32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The value of an id's digits (after its prefix): `None` unless there are
/// 12 of them, all base32.
pub(crate) fn digits_value(digits: &str) -> Option<u64> {
    if digits.len() != 12 {
        return None;
    }
    digits.bytes().try_fold(0u64, |v, c| {
        let d = B32.iter().position(|b| *b == c)? as u64;
        Some((v << 5) | d)
    })
}

/// Defines an id type `$name` shown with prefix `$prefix`, and its parse error `$bad`.
macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $bad:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            pub fn from_u64(v: u64) -> Option<$name> {
                (v != 0 && v < (1 << 60)).then_some($name(v))
            }
            pub fn random() -> $name {
                loop {
                    if let Some(id) = $name::from_u64(rand::random::<u64>() >> 4) {
                        return id;
                    }
                }
            }
            pub fn get(self) -> u64 {
                self.0
            }
            /// The database form (SQLite INTEGER PRIMARY KEY, PostgreSQL BIGINT).
            pub fn as_i64(self) -> i64 {
                self.0 as i64
            }
            pub fn from_i64(v: i64) -> Option<$name> {
                u64::try_from(v).ok().and_then($name::from_u64)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // 60 bits in 12 base32 digits, most significant first.
                let mut buf = [0u8; 12];
                let mut v = self.0;
                for slot in buf.iter_mut().rev() {
                    *slot = $crate::domain::id::B32[(v & 31) as usize];
                    v >>= 5;
                }
                f.write_str($prefix)?;
                f.write_str(std::str::from_utf8(&buf).expect("ascii"))
            }
        }

        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("not a {} id: '{}'", $what, .0)]
        pub struct $bad(pub String);

        impl std::str::FromStr for $name {
            type Err = $bad;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || $bad(s.chars().take(64).collect());
                let digits = s.strip_prefix($prefix).ok_or_else(bad)?;
                let v = $crate::domain::id::digits_value(digits).ok_or_else(bad)?;
                $name::from_u64(v).ok_or_else(bad)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
pub(crate) use opaque_id;
