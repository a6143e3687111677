//! One way to page a list: `limit` and an opaque `cursor` in, `items` and
//! `next_cursor` out (`null` on the last page).
//!
//! Each list orders its items by a key of integers that no two items share
//! (a time in milliseconds, then an id); a page is the first `limit` items
//! whose key is past the cursor's. The cursor is the last item's key,
//! written as integers joined by `.`: any string of that form names a place
//! in the list, so a cursor is never refused for what it names, and an item
//! removed meanwhile shifts no page.

use serde_json::{Value, json};

use super::params::{self, Params};
use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The lists that page this way (by operation), and their key's length.
pub const PAGED: &[(&str, usize)] = &[
    ("my_bookings", 3),
    ("my_applications", 2),
    ("my_memberships", 2),
    ("my_follows", 1),
    ("history", 1),
    ("attendees", 2),
    ("applications", 2),
    ("my_subscriptions", 2),
    ("find_events", 2),
];

/// What a request asks of a paged list.
#[derive(Debug)]
pub struct Page {
    pub limit: usize,
    after: Option<Vec<i64>>,
}

impl Page {
    /// `limit` (1–200, default 50) and `cursor` (a key of `arity` integers).
    pub fn parse(p: &Params, arity: usize) -> Result<Page, ApiError> {
        let limit = p
            .optional("limit", |v| params::int_in_range(v, 1, MAX_LIMIT))?
            .unwrap_or(DEFAULT_LIMIT) as usize;
        let after = p.optional("cursor", |v| parse_cursor(v, arity))?;
        Ok(Page { limit, after })
    }

    /// This page of `items` in the order of `key`, and the next page's cursor.
    pub fn of<T>(&self, items: Vec<T>, key: impl Fn(&T) -> Vec<i64>) -> (Vec<T>, Option<String>) {
        let mut keyed: Vec<(Vec<i64>, T)> = items
            .into_iter()
            .map(|t| (key(&t), t))
            .filter(|(k, _)| self.after.as_ref().is_none_or(|a| k > a))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let next = (keyed.len() > self.limit).then(|| cursor(&keyed[self.limit - 1].0));
        keyed.truncate(self.limit);
        (keyed.into_iter().map(|(_, t)| t).collect(), next)
    }
}

fn cursor(key: &[i64]) -> String {
    key.iter().map(i64::to_string).collect::<Vec<_>>().join(".")
}

fn parse_cursor(v: &str, arity: usize) -> Result<Vec<i64>, String> {
    let bad = || "not a cursor of this list (a previous page's next_cursor)".to_owned();
    let key: Vec<i64> = v
        .split('.')
        .map(|n| {
            let digits = n.strip_prefix('-').unwrap_or(n);
            if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            // Past i64's range is past every key: clamped, it names the
            // same place.
            let wide: i128 = n.parse().map_err(|_| bad())?;
            Ok(wide.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
        })
        .collect::<Result<_, _>>()?;
    if key.len() != arity {
        return Err(bad());
    }
    Ok(key)
}

/// The contract's schema of a paged list's `cursor`.
pub fn cursor_schema(arity: usize) -> Value {
    let n = "-?[0-9]{1,19}";
    json!({
        "type": "string",
        "pattern": format!("^{n}(\\.{n}){{{}}}$", arity - 1),
        "description": "The previous page's `next_cursor` (opaque)",
    })
}

/// An id's number, for a key, from its text (any prefix): keys order as
/// the ids do (`domain::id` decodes it; 0 for a string not of an id's form).
pub fn id_key(id: &str) -> i64 {
    id.get(1..)
        .and_then(crate::domain::id::digits_value)
        .map_or(0, |v| v as i64)
}

/// Milliseconds since the epoch, for a key.
pub fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn page(limit: usize, cursor: Option<&str>, arity: usize) -> Page {
        Page {
            limit,
            after: cursor.map(|c| parse_cursor(c, arity).unwrap()),
        }
    }

    proptest! {
        /// Walking the pages gives the items in key order, each once; an
        /// item removed between pages is the only one that may be missed.
        #[test]
        fn pages_cover_the_list_once_in_order(
            keys in proptest::collection::btree_set((0i64..5, -50i64..50), 0..60),
            limit in 1usize..8,
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let items: Vec<Vec<i64>> = keys.iter().map(|(a, b)| vec![*a, *b]).collect();
            let mut gone = std::collections::BTreeSet::new();
            let mut seen: Vec<Vec<i64>> = Vec::new();
            let mut cursor: Option<String> = None;
            for pages in 0.. {
                let live: Vec<Vec<i64>> =
                    items.iter().filter(|k| !gone.contains(*k)).rev().cloned().collect();
                let (got, next) = page(limit, cursor.as_deref(), 2).of(live, Clone::clone);
                prop_assert!(got.len() <= limit);
                prop_assert!(next.is_none() || got.len() == limit);
                seen.extend(got);
                let Some(c) = next else { break };
                cursor = Some(c);
                if let Some(i) = removals.get(pages) && !items.is_empty() {
                    gone.insert(items[i.index(items.len())].clone());
                }
            }
            prop_assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once: {:?}", seen);
            for k in &items {
                prop_assert!(seen.contains(k) || gone.contains(k), "{:?} missed", k);
            }
        }
    }

    #[test]
    fn id_keys_order_as_ids_do() {
        let mut ids: Vec<String> = (0..50)
            .map(|_| crate::domain::site::SiteId::random().to_string())
            .collect();
        ids.sort();
        let keys: Vec<i64> = ids.iter().map(|i| id_key(i)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(keys.iter().all(|k| *k > 0));
        assert_eq!(
            id_key(&crate::domain::site::SiteId::random().to_string()) >> 60,
            0
        );
    }

    #[test]
    fn cursors_have_their_lists_arity_and_fit_the_schema() {
        assert_eq!(parse_cursor("12.-3", 2), Ok(vec![12, -3]));
        for bad in [
            "",
            "1",
            "1.2.3",
            "a.1",
            "1..2",
            "+1.2",
            "12345678901234567890.1",
        ] {
            assert!(parse_cursor(bad, 2).is_err(), "{bad}");
        }
        // 19 digits past i64 name the end.
        assert_eq!(
            parse_cursor("9999999999999999999.-9999999999999999999", 2),
            Ok(vec![i64::MAX, i64::MIN])
        );
        let pattern = cursor_schema(2)["pattern"].as_str().unwrap().to_owned();
        assert_eq!(pattern, r"^-?[0-9]{1,19}(\.-?[0-9]{1,19}){1}$");
        // Every key's cursor reads back as that key.
        for key in [
            vec![i64::MIN, 0],
            vec![i64::MAX, -1],
            vec![1_733_000_000_000, 42],
        ] {
            assert_eq!(parse_cursor(&cursor(&key), 2), Ok(key));
        }
    }
}
