//! Comparing secrets: sign-in code hashes, check-in and join code tags, the
//! console's CSRF value. Each compare takes the same time wherever the first
//! differing byte is, so a caller who can time answers learns nothing about
//! how much of a guess was right. Lengths are public (every secret here has a
//! fixed length), so a length mismatch may answer early.

use subtle::ConstantTimeEq;

/// `a == b`, in time that does not depend on where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(same(b"", b""));
        assert!(same(b"4f2a", b"4f2a"));
        assert!(!same(b"4f2a", b"4f2b"));
        assert!(!same(b"4f2a", b"5f2a"));
        assert!(!same(b"4f2a", b"4f2"));
        assert!(!same(b"4f2", b"4f2a"));
        assert!(!same(b"", b"a"));
    }
}
