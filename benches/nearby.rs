//! k=10 nearest over 1,000,000 generated sites, single thread: unfiltered, and
//! with a filter that about 1 site in 1,000 passes.
//!
//! Run: `cargo bench --bench nearby`. Numbers go in docs/performance.md.

mod common;

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstar::RTree;
use rstar::primitives::GeomWithData;
use yizhan::domain::coords::{LatLon, unit_vector};
use yizhan::domain::site::{Amenity, AmenitySet, Kind, KindSet, Site};
use yizhan::index::{NearbyQuery, SiteIndex};

/// The (kind, amenity) pair whose share of all sites is closest to 1 in 1,000.
fn rare_filter(sites: &[Site]) -> (Kind, Amenity, f64) {
    let mut best = (Kind::OutdoorStation, Amenity::DrinkingWater, f64::INFINITY);
    for k in Kind::ALL {
        for a in Amenity::ALL {
            let n = sites
                .iter()
                .filter(|s| s.draft.kind == k && s.draft.amenities.contains(a))
                .count();
            let share = n as f64 / sites.len() as f64;
            if share > 0.0 && (share.ln() - 1e-3f64.ln()).abs() < (best.2.ln() - 1e-3f64.ln()).abs()
            {
                best = (k, a, share);
            }
        }
    }
    best
}

fn bench(c: &mut Criterion) {
    let sites = common::sites();
    let (kind, amenity, share) = rare_filter(&sites);
    let input = sites.clone();
    let started = Instant::now();
    let index = SiteIndex::build(input);
    eprintln!(
        "built index of {} sites in {:.2} s; rare filter kind={kind} amenity={amenity} passes 1 in {:.0}",
        index.snapshot().len(),
        started.elapsed().as_secs_f64(),
        1.0 / share
    );
    // Query points where people are: near generated sites, jittered by ~2 km.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let points: Vec<LatLon> = (0..4096)
        .map(|_| {
            let s = &sites[rng.random_range(0..sites.len())].draft;
            LatLon::new(
                (s.lat + rng.random_range(-0.02..0.02)).clamp(-90.0, 90.0),
                (s.lon + rng.random_range(-0.02..0.02)).clamp(-180.0, 180.0),
            )
            .unwrap()
        })
        .collect();
    let snapshot = index.snapshot();
    let at = Utc::now();
    let query = |origin: LatLon, kinds: KindSet, amenities: AmenitySet| NearbyQuery {
        origin,
        k: 10,
        kinds,
        amenities,
        radius_m: None,
        at,
        open_only: false,
    };
    let mut g = c.benchmark_group("nearby_1m");
    let mut i = 0;
    g.bench_function("k10_unfiltered", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            black_box(snapshot.nearest(&query(points[i], KindSet::ALL, AmenitySet::EMPTY)))
        })
    });
    let rare: AmenitySet = [amenity].into_iter().collect();
    g.bench_function("k10_filter_1_in_1000", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            black_box(snapshot.nearest(&query(points[i], KindSet::of(kind), rare)))
        })
    });
    g.bench_function("k10_open_now", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            let mut q = query(points[i], KindSet::ALL, AmenitySet::EMPTY);
            q.open_only = true;
            black_box(snapshot.nearest(&q))
        })
    });
    // Baselines in the same run, for ratios: rstar's own k-nearest iterator over
    // the same unit vectors, unfiltered and with the same rare filter applied
    // to its stream (the approach whose slowness the index is designed against).
    let plain: RTree<GeomWithData<[f64; 3], u32>> = RTree::bulk_load(
        sites
            .iter()
            .enumerate()
            .map(|(i, s)| GeomWithData::new(unit_vector(s.draft.lat, s.draft.lon), i as u32))
            .collect(),
    );
    g.bench_function("baseline_rstar_iter_k10_unfiltered", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            let p = unit_vector(points[i].lat(), points[i].lon());
            black_box(plain.nearest_neighbor_iter(p).take(10).count())
        })
    });
    g.bench_function("baseline_rstar_iter_filter_1_in_1000", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            let p = unit_vector(points[i].lat(), points[i].lon());
            black_box(
                plain
                    .nearest_neighbor_iter(p)
                    .filter(|e| {
                        let d = &sites[e.data as usize].draft;
                        d.kind == kind && d.amenities.contains(amenity)
                    })
                    .take(10)
                    .count(),
            )
        })
    });
    g.finish();
    let mut g = c.benchmark_group("index_build");
    g.sample_size(10);
    g.bench_function("build_1m", |b| {
        b.iter_batched(
            || sites.clone(),
            |sites| black_box(SiteIndex::build(sites)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
