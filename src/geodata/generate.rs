//! Deterministic synthetic sites around real county-level district centres.
//!
//! The same [`GenSpec`] yields the same drafts on every run and platform:
//! ChaCha8 streams (one per kind), integer-only decisions (weights and
//! per-mille probabilities) and bounded "Gaussian-ish" offsets (a sum of four
//! uniforms), so no branch depends on floating-point rounding.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::districts::{DistrictLevel, Record, records};
use super::names;
use crate::domain::coords::{Crs, gcj02_to_wgs84};
use crate::domain::site::{Amenity, AmenitySet, Kind, SiteDraft, Status};

/// Shandong's published totals: outdoor stations, mother rooms; union stations
/// and studios are scaled from Jining's figures.
const SHANDONG_COUNTS: [usize; 4] = [5_500, 5_159, 1_200, 900];
const SHANDONG_SEED: u64 = 2024;

/// What to generate: how many sites of each kind, from which seed, around the
/// county-level districts whose adcode starts with `adcode_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSpec {
    /// Per kind, in [`Kind::ALL`] order.
    pub counts: [usize; 4],
    pub seed: u64,
    /// `""` = all of China, `"37"` = Shandong, `"3701"` = Jinan.
    pub adcode_prefix: String,
}

impl GenSpec {
    /// The Shandong preset: 5,500 outdoor stations, 5,159 mother rooms,
    /// 1,200 union stations and 900 craftsman studios; seed 2024.
    pub fn shandong() -> GenSpec {
        GenSpec {
            counts: SHANDONG_COUNTS,
            seed: SHANDONG_SEED,
            adcode_prefix: "37".to_owned(),
        }
    }

    /// `n` sites split between the kinds in the Shandong proportions
    /// (largest remainder, so the counts add up to exactly `n`).
    pub fn total(n: usize, seed: u64, prefix: &str) -> GenSpec {
        // u128: no overflow on 32-bit targets or for huge n.
        let (n128, sum) = (n as u128, SHANDONG_COUNTS.iter().sum::<usize>() as u128);
        let share = |i: usize| SHANDONG_COUNTS[i] as u128 * n128;
        let mut counts: [usize; 4] = std::array::from_fn(|i| (share(i) / sum) as usize);
        let mut rest: Vec<usize> = (0..4).collect();
        // Largest remainder first; ties by kind order (stable sort).
        rest.sort_by_key(|&i| std::cmp::Reverse(share(i) % sum));
        let missing = n - counts.iter().sum::<usize>();
        for &i in rest.iter().take(missing) {
            counts[i] += 1;
        }
        GenSpec {
            counts,
            seed,
            adcode_prefix: prefix.to_owned(),
        }
    }

    pub fn total_count(&self) -> usize {
        self.counts.iter().sum()
    }

    /// `ext_ref` prefix: "sd" for the Shandong preset, "gen" otherwise (so a
    /// custom run never overwrites the preset's sites on import).
    pub fn ref_prefix(&self) -> &'static str {
        if *self == GenSpec::shandong() {
            "sd"
        } else {
            "gen"
        }
    }
}

/// The FeatureCollection `metadata` member for a file of `spec` written in
/// `crs`: marks the data synthetic and records the seed and counts.
pub fn metadata(spec: &GenSpec, crs: Crs) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = Kind::ALL
        .iter()
        .zip(spec.counts)
        .map(|(k, c)| (k.as_str().to_owned(), json!(c)))
        .collect();
    let preset = (*spec == GenSpec::shandong()).then_some("shandong");
    // Keys in alphabetical order (stable with or without serde_json's preserve_order).
    json!({
        "adcode_prefix": spec.adcode_prefix,
        "counts": counts,
        "crs": crs.as_str(),
        "generator": "yizhan geodata generate",
        "note": "SYNTHETIC data: invented sites scattered around real district centres; not real service locations",
        "preset": preset,
        "seed": spec.seed,
        "sources": "district centres: cn-districts.csv from the cpca package 0.5.5 (MIT licence, (c) 2018 QinYuan Du); names, addresses, phones, amenities and hours are generated",
        "synthetic": true,
        "total": spec.total_count(),
    })
}

/// Streams the spec's drafts: all outdoor stations, then mother rooms, union
/// stations and studios, `ext_ref`s numbered from 1 per kind ("sd-os-000001").
///
/// # Panics
/// If a count is non-zero and no county-level district matches the prefix
/// (check with [`super::districts::county_districts`] first).
pub fn generate(spec: &GenSpec) -> impl Iterator<Item = SiteDraft> + use<> {
    let centres: Vec<&'static Record> = records()
        .iter()
        .filter(|r| r.district.adcode.as_str().starts_with(&spec.adcode_prefix))
        .collect();
    assert!(
        !centres.is_empty() || spec.total_count() == 0,
        "no county-level districts match adcode prefix '{}'",
        spec.adcode_prefix
    );
    let (seed, prefix) = (spec.seed, spec.ref_prefix());
    Kind::ALL
        .into_iter()
        .zip(spec.counts)
        .flat_map(move |(kind, n)| {
            let mut g = KindGen::new(kind, seed, prefix, centres.clone());
            (1..=n).map(move |i| g.site(i))
        })
}

struct Profile {
    code: &'static str,
    /// District weights by level: urban district, county-level city, county.
    weights: [u32; 3],
    /// Offset standard deviation (km) by level.
    sigma_km: [f64; 3],
    /// Per-mille probability of each amenity, in `Amenity::ALL` order.
    amenities: [u32; 16],
    hours: &'static [(&'static str, u32)],
    /// Weights of landline, mobile, no phone.
    phones: [u32; 3],
}

#[rustfmt::skip]
fn profile(kind: Kind) -> Profile {
    // Amenity order: drinking_water hot_water microwave refrigerator phone_charging
    // ebike_charging toilet rest_seats air_conditioning heating first_aid_kit wifi
    // reading_corner nursing_chair baby_changing umbrella.
    match kind {
        Kind::OutdoorStation => Profile {
            code: "os", weights: [6, 3, 2], sigma_km: [2.0, 3.5, 5.0],
            amenities: [950, 800, 700, 250, 850, 350, 600, 900, 750, 500, 650, 450, 60, 15, 10, 550],
            hours: &[("24/7", 40), ("Mo-Su 08:00-22:00", 30), ("Mo-Su 07:00-19:00", 20), ("Mo-Fr 09:00-17:00; PH off", 10)],
            phones: [50, 30, 20],
        },
        Kind::MotherRoom => Profile {
            code: "mr", weights: [5, 3, 2], sigma_km: [2.5, 4.0, 5.5],
            amenities: [600, 750, 200, 450, 400, 20, 250, 600, 700, 400, 300, 350, 80, 950, 700, 40],
            hours: &[("Mo-Fr 09:00-17:00; PH off", 45), ("Mo-Su 09:00-21:00", 30), ("Mo-Fr 08:30-12:00,13:30-17:30", 25)],
            phones: [60, 20, 20],
        },
        Kind::UnionStation => Profile {
            code: "us", weights: [4, 3, 2], sigma_km: [3.0, 4.5, 6.0],
            amenities: [900, 800, 500, 300, 750, 200, 700, 900, 800, 550, 600, 800, 650, 120, 60, 400],
            hours: &[("Mo-Fr 09:00-17:00; PH off", 55), ("Mo-Sa 09:00-18:00", 35), ("Mo-Su 08:00-20:00", 10)],
            phones: [60, 25, 15],
        },
        Kind::CraftsmanStudio => Profile {
            code: "cs", weights: [4, 4, 2], sigma_km: [3.5, 5.5, 7.0],
            amenities: [800, 500, 100, 100, 300, 30, 600, 500, 900, 600, 500, 950, 400, 20, 10, 30],
            hours: &[("Mo-Fr 08:30-17:30; PH off", 85), ("Mo-Fr 08:30-12:00,13:30-17:30", 15)],
            phones: [70, 15, 15],
        },
    }
}

/// Real telephone area codes of Shandong's prefecture-level cities.
const AREA_CODES: [(&str, &str); 17] = [
    ("3701", "0531"),
    ("3702", "0532"),
    ("3703", "0533"),
    ("3704", "0632"),
    ("3705", "0546"),
    ("3706", "0535"),
    ("3707", "0536"),
    ("3708", "0537"),
    ("3709", "0538"),
    ("3710", "0631"),
    ("3711", "0633"),
    ("3712", "0634"),
    ("3713", "0539"),
    ("3714", "0534"),
    ("3715", "0635"),
    ("3716", "0543"),
    ("3717", "0530"),
];

const MOBILE_PREFIXES: [&str; 16] = [
    "130", "131", "133", "135", "136", "137", "138", "139", "150", "151", "158", "159", "177",
    "180", "186", "189",
];

fn level_index(level: DistrictLevel) -> usize {
    match level {
        DistrictLevel::UrbanDistrict => 0,
        DistrictLevel::CountyCity => 1,
        DistrictLevel::County => 2,
    }
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// Picks an index with probability proportional to integer weights.
fn weighted(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = u32> + Clone) -> usize {
    let total: u32 = weights.clone().sum();
    let mut r = rng.random_range(0..total);
    for (i, w) in weights.enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    unreachable!("r < total")
}

struct KindGen {
    kind: Kind,
    profile: Profile,
    prefix: &'static str,
    rng: ChaCha8Rng,
    centres: Vec<&'static Record>,
    /// Cumulative district weights for a binary search.
    cumulative: Vec<u32>,
}

impl KindGen {
    fn new(kind: Kind, seed: u64, prefix: &'static str, centres: Vec<&'static Record>) -> KindGen {
        let profile = profile(kind);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(kind.index() as u64);
        let mut acc = 0;
        let cumulative = centres
            .iter()
            .map(|r| {
                let d = &r.district;
                let mut w = profile.weights[level_index(d.level)];
                // Provincial capitals' urban districts are busier.
                if d.level == DistrictLevel::UrbanDistrict && &d.adcode.as_str()[2..4] == "01" {
                    w *= 2;
                }
                acc += w;
                acc
            })
            .collect();
        KindGen {
            kind,
            profile,
            prefix,
            rng,
            centres,
            cumulative,
        }
    }

    /// A unit-variance, bounded (±3.46) bell-shaped offset.
    fn bell(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.rng.random::<f64>()).sum();
        (s - 2.0) * 3f64.sqrt()
    }

    fn site(&mut self, i: usize) -> SiteDraft {
        let total = *self.cumulative.last().expect("at least one district");
        let r = self.rng.random_range(0..total);
        let centre = self.centres[self.cumulative.partition_point(|&c| c <= r)];
        let d = &centre.district;

        let sigma = self.profile.sigma_km[level_index(d.level)];
        let (north_km, east_km) = (self.bell() * sigma, self.bell() * sigma);
        let gcj_lat = centre.gcj_lat + north_km / 111.32;
        let gcj_lon = centre.gcj_lon + east_km / (111.32 * centre.gcj_lat.to_radians().cos());
        let (lat, lon) = gcj02_to_wgs84(gcj_lat, gcj_lon);

        let ext_ref = format!("{}-{}-{i:06}", self.prefix, self.profile.code);
        let rng = &mut self.rng;
        let street = names::pick(rng, &names::STREETS);
        let name = match self.kind {
            Kind::OutdoorStation => names::outdoor_name(rng, d, street),
            Kind::MotherRoom => names::mother_name(rng, d, street),
            Kind::UnionStation => names::union_name(rng, d, street),
            Kind::CraftsmanStudio => names::studio_name(rng, d),
        };
        let address = names::address(rng, d, street);
        let amenities: AmenitySet = Amenity::ALL
            .into_iter()
            .zip(self.profile.amenities)
            .filter(|&(_, p)| rng.random_range(0..1000u32) < p)
            .map(|(a, _)| a)
            .collect();
        let hours = self.profile.hours;
        let opening_hours = hours[weighted(rng, hours.iter().map(|h| h.1))].0.to_owned();
        let area = AREA_CODES
            .iter()
            .find(|(c, _)| d.adcode.as_str().starts_with(c));
        let phone = match (weighted(rng, self.profile.phones.into_iter()), area) {
            (0, Some((_, code))) => {
                let first = names::pick(rng, &["5", "6", "8", "8"]);
                Some(format!(
                    "{code}-{first}{:07}",
                    rng.random_range(0..10_000_000u32)
                ))
            }
            (0 | 1, _) => {
                let p = names::pick(rng, &MOBILE_PREFIXES);
                Some(format!("{p}{:08}", rng.random_range(0..100_000_000u32)))
            }
            _ => None,
        };
        let photos = (1..=weighted(rng, [45, 35, 20].into_iter()))
            .map(|n| format!("https://img.example.cn/sites/{ext_ref}/{n}.jpg"))
            .collect();
        let status = if rng.random_range(0..1000u32) < 30 {
            Status::TemporarilyClosed
        } else {
            Status::Open
        };
        SiteDraft {
            ext_ref: Some(ext_ref),
            kind: self.kind,
            name,
            address,
            adcode: d.adcode,
            lat: round7(lat),
            lon: round7(lon),
            amenities,
            opening_hours,
            phone,
            photos,
            status,
            closure: Default::default(),
            union_id: None,
        }
    }
}
