//! Map clusters against brute force: at every zoom 0–20 the clusters shown
//! partition exactly the matching sites; a box query covers every matching site
//! inside the box exactly once; zooming to a cluster's `expansion_zoom` splits
//! it and no lower zoom does. Checked on a fresh build, with filters, and again
//! after sites are added, moved and retired.

use std::collections::{HashMap, HashSet};

use chrono::{TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use yizhan::domain::site::{
    Adcode, Amenity, AmenitySet, Kind, KindSet, Site, SiteDraft, SiteId, Status,
};
use yizhan::index::cluster::MAX_ZOOM;
use yizhan::index::{ClusterFilter, LonLatBox, SiteIndex};

const WORLD: LonLatBox = LonLatBox {
    min_lon: -180.0,
    min_lat: -90.0,
    max_lon: 180.0,
    max_lat: 90.0,
};

fn site(n: u64, lat: f64, lon: f64, kind: Kind, amenities: AmenitySet, version: i64) -> Site {
    Site {
        id: SiteId::from_u64(n + 1).unwrap(),
        draft: SiteDraft {
            ext_ref: Some(format!("c-{n}")),
            kind,
            name: format!("site {n}"),
            address: String::new(),
            adcode: "370102".parse::<Adcode>().unwrap(),
            lat,
            lon,
            amenities,
            opening_hours: "24/7".to_owned(),
            phone: None,
            photos: vec![],
            status: Status::Open,
            closure: Default::default(),
            union_id: None,
        },
        version,
        updated_at: Utc.timestamp_opt(0, 0).unwrap(),
    }
}

/// Clumps at every scale (a few metres to hundreds of kilometres), exact
/// duplicates, and sites scattered over the globe, the antimeridian and the poles.
fn random_position(rng: &mut ChaCha8Rng, centres: &[(f64, f64, f64)]) -> (f64, f64) {
    match rng.random_range(0..10) {
        0 => (
            rng.random_range(-90.0..=90.0),
            rng.random_range(-180.0..=180.0),
        ),
        1 => (
            rng.random_range(-70.0..70.0),
            if rng.random() {
                rng.random_range(179.0..=180.0)
            } else {
                rng.random_range(-180.0..-179.0)
            },
        ),
        2 => (
            rng.random_range(84.0..=90.0),
            rng.random_range(-180.0..=180.0),
        ),
        _ => {
            let &(lat, lon, spread) = &centres[rng.random_range(0..centres.len())];
            let dlat: f64 = rng.random_range(-1.0..1.0) * spread;
            let dlon: f64 = rng.random_range(-1.0..1.0) * spread;
            ((lat + dlat).clamp(-90.0, 90.0), wrap(lon + dlon))
        }
    }
}

fn wrap(lon: f64) -> f64 {
    if lon > 180.0 {
        lon - 360.0
    } else if lon < -180.0 {
        lon + 360.0
    } else {
        lon
    }
}

fn random_site(rng: &mut ChaCha8Rng, n: u64, centres: &[(f64, f64, f64)], version: i64) -> Site {
    let (lat, lon) = random_position(rng, centres);
    let kind = Kind::ALL[rng.random_range(0..4)];
    let amenities: AmenitySet = Amenity::ALL
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.3))
        .collect();
    site(n, lat, lon, kind, amenities, version)
}

fn centres(rng: &mut ChaCha8Rng) -> Vec<(f64, f64, f64)> {
    let mut c: Vec<(f64, f64, f64)> = (0..12)
        .map(|i| {
            let spread = [0.00003, 0.0005, 0.01, 0.2, 3.0][i % 5];
            (
                rng.random_range(-60.0..60.0),
                rng.random_range(-180.0..180.0),
                spread,
            )
        })
        .collect();
    c.push((36.65, 117.12, 0.0)); // exact duplicates
    c.push((0.0, 179.9999, 0.001)); // straddling the antimeridian
    c
}

/// The current sites, as the oracle sees them.
struct World {
    sites: HashMap<SiteId, Site>,
}

impl World {
    fn matching(&self, f: ClusterFilter) -> HashSet<SiteId> {
        self.sites
            .values()
            .filter(|s| {
                f.kinds.contains(s.draft.kind) && s.draft.amenities.contains_all(f.amenities)
            })
            .map(|s| s.id)
            .collect()
    }
}

/// Check every zoom of one filter; returns the number of clusters checked.
fn check_filter(index: &SiteIndex, world: &World, f: ClusterFilter, rng: &mut ChaCha8Rng) -> usize {
    let matching = world.matching(f);
    index.with_clusters(f, |view| {
        // zoom → site → the cluster (node) showing it.
        let mut shown_in: Vec<HashMap<SiteId, u32>> = Vec::new();
        let mut checked = 0;
        for z in 0..=MAX_ZOOM {
            let (clusters, truncated) = view.clusters(z, &WORLD, usize::MAX);
            assert!(!truncated);
            let mut at_z = HashMap::new();
            let mut total = 0u64;
            for c in &clusters {
                let members = view.members(c.found.node);
                assert_eq!(
                    members.len() as u32,
                    c.found.count(),
                    "zoom {z}: count is the member count"
                );
                let mut by_kind = [0u32; 4];
                for id in &members {
                    assert!(
                        matching.contains(id),
                        "zoom {z}: cluster member {id} does not match the filter"
                    );
                    by_kind[world.sites[id].draft.kind.index()] += 1;
                    assert!(
                        at_z.insert(*id, c.found.node).is_none(),
                        "zoom {z}: {id} shown twice"
                    );
                }
                assert_eq!(by_kind, c.found.by_kind, "zoom {z}: counts_by_kind");
                total += u64::from(c.found.count());
                if c.found.count() == 1 {
                    assert_eq!(
                        c.site.map(|s| s.id()),
                        Some(members[0]),
                        "a lone site carries itself"
                    );
                    assert_eq!(c.found.expansion_zoom, None);
                } else {
                    assert!(c.site.is_none());
                    let e = c
                        .found
                        .expansion_zoom
                        .expect("a cluster has an expansion zoom");
                    assert!(e > z && e <= MAX_ZOOM, "zoom {z}: expansion_zoom {e}");
                }
                // The centroid is the members' mean in Mercator (which ends at ±85.0511°),
                // so it lies within their latitudes.
                let lats = members.iter().map(|id| {
                    world.sites[id]
                        .draft
                        .lat
                        .clamp(-85.051_128_78, 85.051_128_78)
                });
                let lat_lo = lats.clone().fold(f64::MAX, f64::min);
                let lat_hi = lats.fold(f64::MIN, f64::max);
                assert!(
                    c.lat >= lat_lo - 1e-6 && c.lat <= lat_hi + 1e-6,
                    "centroid latitude {} outside its members' [{lat_lo}, {lat_hi}]",
                    c.lat
                );
            }
            assert_eq!(
                total,
                matching.len() as u64,
                "zoom {z}: world-wide counts add up to the matching sites"
            );
            assert_eq!(at_z.len(), matching.len());
            if z == MAX_ZOOM {
                assert!(
                    clusters.iter().all(|c| c.found.count() == 1),
                    "at zoom 20 every site stands alone"
                );
            }
            shown_in.push(at_z);
            checked += clusters.len();
        }
        if matching.len() > 500 {
            let (top, _) = view.clusters(0, &WORLD, usize::MAX);
            assert!(
                top.len() * 5 < matching.len(),
                "zoom 0 clusters: {} for {} sites",
                top.len(),
                matching.len()
            );
        }

        // expansion_zoom: members stay together below it and are split at it.
        for z in 0..MAX_ZOOM {
            let (clusters, _) = view.clusters(z, &WORLD, usize::MAX);
            for c in clusters.iter().filter(|c| c.found.count() > 1) {
                let e = c.found.expansion_zoom.unwrap();
                let members = view.members(c.found.node);
                for (zz, shown) in shown_in
                    .iter()
                    .enumerate()
                    .take(e as usize + 1)
                    .skip(z as usize)
                {
                    let parts: HashSet<u32> = members.iter().map(|id| shown[id]).collect();
                    if zz < e as usize {
                        assert_eq!(
                            parts.len(),
                            1,
                            "cluster at {z} with expansion_zoom {e} already split at {zz}"
                        );
                    } else {
                        assert!(
                            parts.len() >= 2,
                            "cluster at {z} did not split at its expansion_zoom {e}"
                        );
                    }
                }
            }
        }

        // Random boxes, screen-sized for the zoom and larger, some across the antimeridian.
        for z in 0..=MAX_ZOOM {
            for _ in 0..30 {
                let b = random_box(rng, z, &world.sites);
                let (clusters, truncated) = view.clusters(z, &b, usize::MAX);
                assert!(!truncated);
                let mut covered: HashMap<SiteId, u32> = HashMap::new();
                for c in &clusters {
                    for id in view.members(c.found.node) {
                        assert!(
                            covered.insert(id, c.found.node).is_none(),
                            "{id} counted twice in a box"
                        );
                    }
                }
                for id in &matching {
                    let s = &world.sites[id];
                    if b.contains(s.draft.lat, s.draft.lon) {
                        assert!(
                            covered.contains_key(id),
                            "zoom {z}: {id} inside {b:?} is in no returned cluster"
                        );
                    }
                }
            }
        }
        checked
    })
}

/// A box around a random site (or anywhere), about a phone screen wide at `z` or bigger.
fn random_box(rng: &mut ChaCha8Rng, z: u8, sites: &HashMap<SiteId, Site>) -> LonLatBox {
    let (lat, lon) = if rng.random_bool(0.8) && !sites.is_empty() {
        let s = sites
            .values()
            .nth(rng.random_range(0..sites.len()))
            .unwrap();
        (s.draft.lat, s.draft.lon)
    } else {
        (
            rng.random_range(-80.0..80.0),
            rng.random_range(-180.0..180.0),
        )
    };
    let screen_deg = 360.0 * 1000.0 / (512.0 * f64::from(1u32 << z));
    let w = (screen_deg * rng.random_range(0.05..3.0)).min(359.0);
    let h = (screen_deg * rng.random_range(0.05..2.0)).min(170.0);
    LonLatBox {
        min_lon: wrap(lon - w / 2.0),
        min_lat: (lat - h / 2.0).max(-90.0),
        max_lon: wrap(lon + w / 2.0),
        max_lat: (lat + h / 2.0).min(90.0),
    }
}

fn filters() -> Vec<ClusterFilter> {
    vec![
        ClusterFilter::ALL,
        ClusterFilter {
            kinds: KindSet::of(Kind::OutdoorStation),
            amenities: AmenitySet::EMPTY,
        },
        ClusterFilter {
            kinds: KindSet::ALL,
            amenities: [Amenity::ALL[3]].into_iter().collect(),
        },
        ClusterFilter {
            kinds: [Kind::MotherRoom, Kind::CraftsmanStudio]
                .into_iter()
                .collect(),
            amenities: [Amenity::ALL[0], Amenity::ALL[5]].into_iter().collect(),
        },
    ]
}

#[test]
fn clusters_partition_the_sites_at_every_zoom_and_stay_exact_under_updates() {
    let mut rng = ChaCha8Rng::seed_from_u64(20261122);
    let centres = centres(&mut rng);
    let initial: Vec<Site> = (0..4000)
        .map(|n| random_site(&mut rng, n, &centres, 1))
        .collect();
    let index = SiteIndex::build(initial.clone());
    let mut world = World {
        sites: initial.into_iter().map(|s| (s.id, s)).collect(),
    };
    let mut checked = 0;
    for f in filters() {
        checked += check_filter(&index, &world, f, &mut rng);
    }
    assert!(checked > 10_000, "checked {checked} clusters");

    // Add, move and retire in batches; cached hierarchies follow incrementally.
    let mut next_id = 4000;
    for round in 0..4 {
        let mut batch = Vec::new();
        let ids: Vec<SiteId> = world.sites.keys().copied().collect();
        for _ in 0..300 {
            match rng.random_range(0..3) {
                0 => {
                    let s = random_site(&mut rng, next_id, &centres, 1);
                    next_id += 1;
                    batch.push(s);
                }
                1 => {
                    let id = ids[rng.random_range(0..ids.len())];
                    let Some(old) = world.sites.get(&id) else {
                        continue;
                    };
                    let mut moved = random_site(&mut rng, id.get() - 1, &centres, old.version + 1);
                    if rng.random_bool(0.3) {
                        // A short move: the site stays in its clump.
                        moved.draft.lat =
                            (old.draft.lat + rng.random_range(-0.001..0.001)).clamp(-90.0, 90.0);
                        moved.draft.lon = old.draft.lon;
                    }
                    batch.push(moved);
                }
                _ => {
                    let id = ids[rng.random_range(0..ids.len())];
                    let Some(old) = world.sites.get(&id) else {
                        continue;
                    };
                    let mut gone = old.clone();
                    gone.version += 1;
                    gone.draft.status = Status::Retired;
                    batch.push(gone);
                }
            }
            // Later entries for the same site supersede earlier ones, as in the feed.
            let last = batch.last().unwrap().clone();
            if last.draft.status == Status::Retired {
                world.sites.remove(&last.id);
            } else {
                world.sites.insert(last.id, last);
            }
        }
        // Dedupe by id keeping the last, versions increasing.
        let mut by_id: HashMap<SiteId, Site> = HashMap::new();
        for s in batch {
            by_id.insert(s.id, s);
        }
        index.apply(by_id.into_values());
        for f in filters() {
            check_filter(&index, &world, f, &mut rng);
        }
        assert_eq!(index.snapshot().len(), world.sites.len(), "round {round}");
    }
}

#[test]
fn a_filter_first_asked_for_after_updates_is_built_from_the_current_sites() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let centres = centres(&mut rng);
    let initial: Vec<Site> = (0..1500)
        .map(|n| random_site(&mut rng, n, &centres, 1))
        .collect();
    let index = SiteIndex::build(initial.clone());
    let mut world = World {
        sites: initial.into_iter().map(|s| (s.id, s)).collect(),
    };
    let mut changes = Vec::new();
    for n in 0..200u64 {
        let mut s = world.sites[&SiteId::from_u64(n + 1).unwrap()].clone();
        s.version += 1;
        if n % 2 == 0 {
            s.draft.status = Status::Retired;
            world.sites.remove(&s.id);
        } else {
            s.draft.kind = Kind::UnionStation;
            world.sites.insert(s.id, s.clone());
        }
        changes.push(s);
    }
    index.apply(changes);
    let f = ClusterFilter {
        kinds: KindSet::of(Kind::UnionStation),
        amenities: AmenitySet::EMPTY,
    };
    assert!(!index.clusters_cached(f));
    check_filter(&index, &world, f, &mut rng);
    assert!(index.clusters_cached(f));
}

#[test]
fn sites_within_a_few_metres_cluster_until_zoom_20() {
    // Two sites 1 m apart: one cluster up to zoom 19, apart at 20.
    let a = site(1, 36.65, 117.12, Kind::OutdoorStation, AmenitySet::EMPTY, 1);
    let b = site(
        2,
        36.65 + 0.000009,
        117.12,
        Kind::MotherRoom,
        AmenitySet::EMPTY,
        1,
    );
    let index = SiteIndex::build(vec![a, b]);
    index.with_clusters(ClusterFilter::ALL, |view| {
        for z in 0..MAX_ZOOM {
            let (c, _) = view.clusters(z, &WORLD, 10);
            assert_eq!(c.len(), 1, "zoom {z}");
            assert_eq!(c[0].found.count(), 2);
            assert_eq!(c[0].found.by_kind[Kind::OutdoorStation.index()], 1);
            assert_eq!(c[0].found.expansion_zoom, Some(MAX_ZOOM));
        }
        let (c, _) = view.clusters(MAX_ZOOM, &WORLD, 10);
        assert_eq!(c.len(), 2);
    });
}
