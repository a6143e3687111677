//! The map over 1,000,000 generated sites, single thread: cluster responses
//! (JSON body for a phone-screen viewport) and vector tiles (encoded MVT) at
//! zooms 4, 10 and 16, and the time to build the cluster hierarchy.
//!
//! Run: `cargo bench --bench map`. Numbers go in docs/performance.md.

mod common;

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use yizhan::domain::coords::{Crs, from_wgs84};
use yizhan::http::{clusters, tiles};
use yizhan::index::cluster::{Hierarchy, Point, merc_to_latlon, merc_x, merc_y};
use yizhan::index::{ClusterFilter, LonLatBox, SiteIndex};

const ZOOMS: [u8; 3] = [4, 10, 16];

/// A phone screen (1024 × 2048 px of 512-px tiles) at `zoom`, centred on `(lat, lon)`, in GCJ-02.
fn screen(zoom: u8, lat: f64, lon: f64) -> LonLatBox {
    let world = 512.0 * f64::from(1u32 << zoom);
    let (x, y) = (merc_x(lon), merc_y(lat));
    let (hw, hh) = (512.0 / world, 1024.0 / world);
    let (lat1, lon0) = merc_to_latlon((x - hw).max(0.0), (y - hh).max(0.0));
    let (lat0, lon1) = merc_to_latlon((x + hw).min(1.0), (y + hh).min(1.0));
    LonLatBox {
        min_lon: lon0,
        min_lat: lat0,
        max_lon: lon1,
        max_lat: lat1,
    }
}

fn bench(c: &mut Criterion) {
    let sites = common::sites();
    let started = Instant::now();
    let index = SiteIndex::build(sites.clone());
    eprintln!(
        "built index of {} sites in {:.2} s",
        index.snapshot().len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    index.with_clusters(ClusterFilter::ALL, |_| ());
    eprintln!(
        "built the cluster hierarchy on first use in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    // Where riders look: around generated sites, in GCJ-02 as their maps are.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let centres: Vec<(f64, f64)> = (0..1024)
        .map(|_| {
            let s = &sites[rng.random_range(0..sites.len())].draft;
            from_wgs84(Crs::Gcj02, s.lat, s.lon)
        })
        .collect();
    let at = Utc::now();
    index.with_clusters(ClusterFilter::ALL, |view| {
        let mut g = c.benchmark_group("map_1m");
        for zoom in ZOOMS {
            let boxes: Vec<LonLatBox> = centres
                .iter()
                .map(|&(lat, lon)| screen(zoom, lat, lon))
                .collect();
            let (mut clusters_seen, mut bytes) = (0usize, 0usize);
            for b in boxes.iter().take(64) {
                let body = clusters::render(
                    view,
                    zoom,
                    &clusters::wgs84_box(*b, Crs::Gcj02),
                    Crs::Gcj02,
                    5000,
                    at,
                    None,
                );
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                clusters_seen += v["clusters"].as_array().unwrap().len();
                bytes += body.len();
            }
            eprintln!(
                "zoom {zoom}: {:.0} clusters, {:.0} bytes per screen",
                clusters_seen as f64 / 64.0,
                bytes as f64 / 64.0
            );
            let mut i = 0;
            g.bench_function(format!("clusters_screen_z{zoom}"), |b| {
                b.iter(|| {
                    i = (i + 1) % boxes.len();
                    let search = clusters::wgs84_box(boxes[i], Crs::Gcj02);
                    black_box(clusters::render(
                        view,
                        zoom,
                        &search,
                        Crs::Gcj02,
                        5000,
                        at,
                        None,
                    ))
                })
            });
            let n = f64::from(1u32 << zoom);
            let tiles_xy: Vec<(u32, u32)> = centres
                .iter()
                .map(|&(lat, lon)| ((merc_x(lon) * n) as u32, (merc_y(lat) * n) as u32))
                .collect();
            let bytes: usize = tiles_xy
                .iter()
                .take(64)
                .map(|&(x, y)| tiles::render(view, zoom, x, y, Crs::Gcj02, at).len())
                .sum();
            eprintln!("zoom {zoom}: {:.0} bytes per tile", bytes as f64 / 64.0);
            g.bench_function(format!("tile_z{zoom}"), |b| {
                b.iter(|| {
                    i = (i + 1) % tiles_xy.len();
                    let (x, y) = tiles_xy[i];
                    black_box(tiles::render(view, zoom, x, y, Crs::Gcj02, at))
                })
            });
        }
        g.finish();
    });

    let snapshot = index.snapshot();
    let points: Vec<Point> = snapshot.sites().map(|s| Point::of(s)).collect();
    let mut g = c.benchmark_group("cluster_build");
    g.sample_size(10);
    g.bench_function("hierarchy_1m", |b| {
        b.iter_batched(
            || points.clone(),
            |p| black_box(Hierarchy::build(p)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
