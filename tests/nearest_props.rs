//! Nearby search against a brute-force haversine scan: the index must return
//! exactly what scanning every site would, for random points and filters, and
//! stay exact across the antimeridian and at the poles.

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use yizhan::domain::coords::{LatLon, haversine_m};
use yizhan::domain::hours::Hours;
use yizhan::domain::site::{
    Adcode, Amenity, AmenitySet, Kind, KindSet, Site, SiteDraft, SiteId, Status,
};
use yizhan::index::{NearbyQuery, SiteIndex};

const HOURS: [&str; 4] = [
    "24/7",
    "Mo-Su 08:00-22:00",
    "Mo-Fr 09:00-17:00; PH off",
    "Mo-Su 22:00-06:00",
];

fn site(
    n: u64,
    lat: f64,
    lon: f64,
    kind: Kind,
    amenities: AmenitySet,
    hours: &str,
    status: Status,
) -> Site {
    Site {
        id: SiteId::from_u64(n + 1).unwrap(),
        draft: SiteDraft {
            ext_ref: Some(format!("p-{n}")),
            kind,
            name: format!("site {n}"),
            address: String::new(),
            adcode: "370102".parse::<Adcode>().unwrap(),
            lat,
            lon,
            amenities,
            opening_hours: hours.to_owned(),
            phone: None,
            photos: vec![],
            status,
            closure: Default::default(),
            union_id: None,
        },
        version: 1,
        updated_at: Utc.timestamp_opt(0, 0).unwrap(),
    }
}

/// A random point on the sphere, uniformly distributed, sometimes near a pole or the antimeridian.
fn random_point(rng: &mut ChaCha8Rng) -> (f64, f64) {
    match rng.random_range(0..10) {
        0 => (
            rng.random_range(85.0..=90.0),
            rng.random_range(-180.0..=180.0),
        ),
        1 => (
            rng.random_range(-90.0..=-85.0),
            rng.random_range(-180.0..=180.0),
        ),
        2 => {
            let off = rng.random_range(0.0..2.0);
            (
                rng.random_range(-60.0..60.0),
                if rng.random() {
                    180.0 - off
                } else {
                    off - 180.0
                },
            )
        }
        3..=5 => (rng.random_range(34.0..38.5), rng.random_range(114.5..122.8)), // Shandong-dense
        _ => {
            let z: f64 = rng.random_range(-1.0..=1.0);
            (z.asin().to_degrees(), rng.random_range(-180.0..=180.0))
        }
    }
}

fn wrap_lon(lon: f64) -> f64 {
    if lon > 180.0 {
        lon - 360.0
    } else if lon < -180.0 {
        lon + 360.0
    } else {
        lon
    }
}

fn random_sites(rng: &mut ChaCha8Rng, n: usize) -> Vec<Site> {
    (0..n)
        .map(|i| {
            let (lat, lon) = random_point(rng);
            let kind = Kind::ALL[rng.random_range(0..4)];
            let amenities: AmenitySet = Amenity::ALL
                .into_iter()
                .filter(|_| rng.random_bool(0.3))
                .collect();
            let hours = HOURS[rng.random_range(0..HOURS.len())];
            let status = match rng.random_range(0..20) {
                0 => Status::Retired,
                1 => Status::TemporarilyClosed,
                _ => Status::Open,
            };
            site(i as u64, lat, wrap_lon(lon), kind, amenities, hours, status)
        })
        .collect()
}

struct Oracle {
    sites: Vec<(Site, LatLon, Option<Hours>)>,
}

impl Oracle {
    fn new(sites: &[Site]) -> Oracle {
        Oracle {
            sites: sites
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        LatLon::new(s.draft.lat, s.draft.lon).unwrap(),
                        // `SiteIndex::build` knows no holidays either.
                        Hours::parse(&s.draft.opening_hours, &Default::default()).ok(),
                    )
                })
                .collect(),
        }
    }

    /// Every matching site's distance, sorted, truncated to k.
    fn nearest(&self, q: &NearbyQuery) -> Vec<(f64, SiteId)> {
        let mut all: Vec<(f64, SiteId)> = self
            .sites
            .iter()
            .filter(|(s, _, h)| {
                let d = &s.draft;
                d.status != Status::Retired
                    && q.kinds.contains(d.kind)
                    && d.amenities.contains_all(q.amenities)
                    && (!q.open_only
                        || (d.status == Status::Open
                            && h.as_ref().is_some_and(|h| h.is_open(q.at))))
            })
            .map(|(s, p, _)| (haversine_m(q.origin, *p), s.id))
            .filter(|(d, _)| q.radius_m.is_none_or(|r| *d <= r))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.truncate(q.k);
        all
    }
}

fn random_query(rng: &mut ChaCha8Rng) -> NearbyQuery {
    let (lat, lon) = random_point(rng);
    let kinds: KindSet = if rng.random_bool(0.5) {
        KindSet::ALL
    } else {
        let ks: KindSet = Kind::ALL
            .into_iter()
            .filter(|_| rng.random_bool(0.4))
            .collect();
        if ks.is_empty() {
            KindSet::of(Kind::MotherRoom)
        } else {
            ks
        }
    };
    let amenities: AmenitySet = match rng.random_range(0..3) {
        0 => AmenitySet::EMPTY,
        1 => [Amenity::ALL[rng.random_range(0..16)]]
            .into_iter()
            .collect(),
        _ => Amenity::ALL
            .into_iter()
            .filter(|_| rng.random_bool(0.15))
            .collect(),
    };
    let radius_m = match rng.random_range(0..3) {
        0 => None,
        1 => Some(rng.random_range(1.0..200_000.0)),
        _ => Some(rng.random_range(100_000.0..2_000_000.0)),
    };
    let at: DateTime<Utc> = Utc
        .timestamp_opt(rng.random_range(1_704_067_200..1_798_675_200), 0)
        .unwrap();
    NearbyQuery {
        origin: LatLon::new(lat, wrap_lon(lon)).unwrap(),
        k: rng.random_range(1..=100),
        kinds,
        amenities,
        radius_m,
        at,
        open_only: rng.random_bool(0.25),
    }
}

fn check(index: &SiteIndex, oracle: &Oracle, q: &NearbyQuery) {
    let snapshot = index.snapshot();
    let got = snapshot.nearest(q);
    let want = oracle.nearest(q);
    assert_eq!(got.len(), want.len(), "result count for {q:?}");
    for (i, (hit, (wd, _))) in got.iter().zip(&want).enumerate() {
        assert!(
            (hit.distance_m - wd).abs() <= 1e-6 * wd.max(1.0),
            "rank {i}: index says {} m, brute force {wd} m for {q:?}",
            hit.distance_m
        );
        // The hit itself must satisfy the filter and be where it says.
        let d = hit.site.view();
        assert!(q.kinds.contains(d.kind) && d.amenities.contains_all(q.amenities));
        assert_ne!(d.status, Status::Retired);
        let true_d = haversine_m(q.origin, LatLon::new(d.lat, d.lon).unwrap());
        assert!((true_d - hit.distance_m).abs() < 1e-6 * true_d.max(1.0));
        if q.open_only {
            assert!(hit.state.is_open);
        }
    }
    // Strictly-closer brute-force results must all be present (ties may swap).
    let got_ids: std::collections::HashSet<SiteId> = got.iter().map(|h| h.site.id()).collect();
    if let Some(last) = got.last() {
        for (d, id) in &want {
            if *d < last.distance_m * (1.0 - 1e-9) {
                assert!(got_ids.contains(id), "missing {id} at {d} m for {q:?}");
            }
        }
    }
}

#[test]
fn nearby_matches_brute_force_on_100k_sites() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sites = random_sites(&mut rng, 100_000);
    let index = SiteIndex::build(sites.clone());
    let oracle = Oracle::new(&sites);
    // 10,000 queries, split over two threads (the brute force is the slow part).
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (index, oracle) = (&index, &oracle);
            s.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(100 + t);
                for _ in 0..5_000 {
                    check(index, oracle, &random_query(&mut rng));
                }
            });
        }
    });
}

#[test]
fn updates_are_visible_and_exact() {
    // Start from 5,000 sites, then move, retire and add sites in several batches
    // (enough to force compaction), checking against brute force after each.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut sites = random_sites(&mut rng, 5_000);
    let index = SiteIndex::build(sites.clone());
    for round in 0..12 {
        let mut changed = Vec::new();
        for _ in 0..150 {
            let i = rng.random_range(0..sites.len() + 20);
            if i >= sites.len() {
                let (lat, lon) = random_point(&mut rng);
                let s = site(
                    sites.len() as u64,
                    lat,
                    wrap_lon(lon),
                    Kind::OutdoorStation,
                    AmenitySet::EMPTY,
                    "24/7",
                    Status::Open,
                );
                sites.push(s.clone());
                changed.push(s);
            } else {
                let s = &mut sites[i];
                s.version += 1;
                if rng.random_bool(0.3) {
                    s.draft.status = Status::Retired;
                } else {
                    let (lat, lon) = random_point(&mut rng);
                    s.draft.lat = lat;
                    s.draft.lon = wrap_lon(lon);
                    s.draft.status = Status::Open;
                }
                changed.push(s.clone());
            }
        }
        index.apply(changed.clone());
        // Applying the same versions again is a no-op.
        index.apply(changed);
        let oracle = Oracle::new(&sites);
        let live = sites
            .iter()
            .filter(|s| s.draft.status != Status::Retired)
            .count();
        assert_eq!(index.snapshot().len(), live, "round {round}");
        for _ in 0..200 {
            check(&index, &oracle, &random_query(&mut rng));
        }
    }
}

#[test]
fn antimeridian_and_poles() {
    let sites = vec![
        site(
            0,
            0.0,
            179.99,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
        site(
            1,
            0.0,
            -179.99,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
        site(
            2,
            0.0,
            170.0,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
        site(
            3,
            89.99,
            0.0,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
        site(
            4,
            89.99,
            180.0,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
        site(
            5,
            -90.0,
            0.0,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
        site(
            6,
            80.0,
            0.0,
            Kind::OutdoorStation,
            AmenitySet::EMPTY,
            "24/7",
            Status::Open,
        ),
    ];
    let index = SiteIndex::build(sites);
    let q = |lat: f64, lon: f64, k: usize| NearbyQuery {
        origin: LatLon::new(lat, lon).unwrap(),
        k,
        kinds: KindSet::ALL,
        amenities: AmenitySet::EMPTY,
        radius_m: None,
        at: Utc::now(),
        open_only: false,
    };
    let snap = index.snapshot();
    let refs = |q: NearbyQuery| -> Vec<String> {
        index
            .snapshot()
            .nearest(&q)
            .iter()
            .map(|h| h.site.ext_ref().unwrap().to_owned())
            .collect()
    };
    // Just west of the antimeridian: the site just east of it is ~2.2 km away, not 40,000 km.
    let hits = snap.nearest(&q(0.0, 179.999, 2));
    assert_eq!(hits[0].site.ext_ref(), Some("p-0"));
    assert_eq!(hits[1].site.ext_ref(), Some("p-1"));
    assert!(hits[1].distance_m < 2_300.0, "{}", hits[1].distance_m);
    assert_eq!(refs(q(0.0, -179.999, 1)), ["p-1"]);
    // At the north pole every longitude is the same place: the two 89.99° sites tie.
    let hits = snap.nearest(&q(90.0, 45.0, 3));
    assert!((hits[0].distance_m - hits[1].distance_m).abs() < 1e-6);
    assert!(
        (hits[0].distance_m - 1_111.95).abs() < 1.0,
        "{}",
        hits[0].distance_m
    );
    assert_eq!(hits[2].site.ext_ref(), Some("p-6"));
    // Over the pole: from 89.99°N 180° the nearest is the site at 180°, then 0° (2.2 km across the pole).
    let hits = snap.nearest(&q(89.99, -180.0, 2));
    assert_eq!(hits[0].site.ext_ref(), Some("p-4"));
    assert!(hits[0].distance_m < 1e-3);
    assert!(
        (hits[1].distance_m - 2_223.9).abs() < 1.0,
        "{}",
        hits[1].distance_m
    );
    // The south pole site is found from anywhere in the far south.
    assert_eq!(refs(q(-89.0, 123.0, 1)), ["p-5"]);
}
