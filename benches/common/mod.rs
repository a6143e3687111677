//! What the benchmarks share: the 1,000,000 generated sites they run over.

use chrono::{TimeZone, Utc};
use yizhan::domain::site::{Site, SiteId};
use yizhan::geodata::generate::{GenSpec, generate};

pub const N: usize = 1_000_000;

/// `GenSpec::total(1_000_000, 42, "")`: nationwide, around real district centres.
pub fn sites() -> Vec<Site> {
    let spec = GenSpec::total(N, 42, "");
    generate(&spec)
        .enumerate()
        .map(|(i, draft)| Site {
            id: SiteId::from_u64(i as u64 + 1).unwrap(),
            draft,
            version: 1,
            updated_at: Utc.timestamp_opt(0, 0).unwrap(),
        })
        .collect()
}
