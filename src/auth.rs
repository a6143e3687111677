//! Sign-in by phone: one-time codes sent by SMS, bearer tokens, and the clock
//! they are judged by. Codes and tokens are random and stored only as SHA-256
//! hashes; neither is ever logged at info level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::domain::user::Phone;

/// A code lives this long…
pub const OTP_TTL: Duration = Duration::from_secs(5 * 60);
/// …and dies after this many wrong tries.
pub const OTP_MAX_ATTEMPTS: i64 = 5;
/// A token lives this long unless revoked.
pub const TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Rate limits on code requests: (requests, window) pairs, all enforced.
/// Per phone they sit inside the SMS providers' own default limits per
/// number (Aliyun: 1 a minute, 5 an hour, 10 a day; Tencent Cloud: 1 in 30 s,
/// 5 an hour, 10 a day), so a provider never refuses a code for frequency.
pub const OTP_LIMITS_PER_PHONE: [(i64, Duration); 3] = [
    (1, Duration::from_secs(60)),
    (5, Duration::from_secs(3600)),
    (10, Duration::from_secs(24 * 3600)),
];
pub const OTP_LIMITS_PER_IP: [(i64, Duration); 2] = [
    (10, Duration::from_secs(60)),
    (30, Duration::from_secs(3600)),
];

/// A new random 6-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// A new bearer token: 32 random bytes, URL-safe base64, with a prefix that
/// secret scanners can recognise.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!(
        "yz_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What is stored for a token: hex SHA-256.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// What is stored for a code: bound to its phone, so a hash says nothing on its own.
pub fn code_hash(phone: &Phone, code: &str) -> String {
    sha256_hex(format!("{}:{code}", phone.as_str()).as_bytes())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Where "now" comes from: the system clock, or a hand-moved one in tests (so
/// that expiry is tested without sleeping).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock poisoned");
        *t += chrono::Duration::from_std(by).expect("a sane duration");
    }

    /// Move to `at` (forwards or backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock poisoned") = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock poisoned")
    }
}

pub use crate::sms::{LogSender, MemorySender, SmsSender};

/// What the HTTP layer needs for sign-in.
#[derive(Clone)]
pub struct Auth {
    pub clock: Arc<dyn Clock>,
    pub sms: Arc<dyn SmsSender>,
    /// The token SMS receipt callbacks carry (`None`: receipts are off).
    pub sms_receipt_token: Option<crate::sms::config::Secret>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            clock: Arc::new(SystemClock),
            sms: Arc::new(LogSender::default()),
            sms_receipt_token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_tokens_look_right_and_hash_apart() {
        for _ in 0..100 {
            let c = new_code();
            assert!(c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()));
        }
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("yz_") && a.len() == 46);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
        let p1: Phone = "13800000001".parse().unwrap();
        let p2: Phone = "13800000002".parse().unwrap();
        assert_ne!(code_hash(&p1, "123456"), code_hash(&p2, "123456"));
    }

    #[test]
    fn hex_is_lower_case_and_matches_the_formatter() {
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), want);
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
