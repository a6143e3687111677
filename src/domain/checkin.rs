//! Check-in codes: what a booking's holder shows at the door as a QR code.
//! A code is the booking id and an HMAC-SHA256 tag (80 bits) under the
//! server's key, URL-safe base64, 24 characters: it can be checked without a
//! lookup and cannot be made without the key.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::event::{BookingId, BookingStatus};

/// Which bookings carry a code: those holding a seat that is theirs to use.
pub fn has_code(status: BookingStatus) -> bool {
    matches!(status, BookingStatus::Confirmed | BookingStatus::CheckedIn)
}

/// The check-in code of booking `id` under `key`.
pub fn code(key: &[u8], id: BookingId) -> String {
    let idb = id.get().to_be_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"yizhan-checkin:");
    mac.update(&idb);
    let tag = mac.finalize().into_bytes();
    let mut raw = idb.to_vec();
    raw.extend_from_slice(&tag[..10]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The booking a genuine code names; `None` for anything else.
pub fn verify(key: &[u8], code_text: &str) -> Option<BookingId> {
    let code_text = code_text.trim();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(code_text)
        .ok()?;
    if raw.len() != 18 {
        return None;
    }
    let id = BookingId::from_u64(u64::from_be_bytes(raw[..8].try_into().ok()?))?;
    let expected = code(key, id);
    super::secret::same(expected.as_bytes(), code_text.as_bytes()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_only_under_their_key() {
        let id = BookingId::from_u64(0x0abc_def0_1234_5678).unwrap();
        let c = code(b"k1", id);
        assert_eq!(c.len(), 24);
        assert_eq!(verify(b"k1", &c), Some(id));
        assert_eq!(verify(b"k1", &format!(" {c}\n")), Some(id));
        assert_eq!(verify(b"k2", &c), None);
        // Any changed character breaks it.
        for i in 0..c.len() {
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                verify(b"k1", &String::from_utf8(bytes).unwrap()),
                None,
                "{i}"
            );
        }
        assert_eq!(verify(b"k1", "not a code"), None);
    }
}
