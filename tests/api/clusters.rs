//! Clusters and vector tiles over HTTP: world-wide counts add up at every zoom,
//! edits through the store show up, ETags, and a tile decoded by an
//! independent MVT decoder (`mvt-reader`) holds the expected features.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mvt_reader::Reader;
use mvt_reader::feature::Value as MvtValue;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use yizhan::domain::coords::{Crs, from_wgs84};
use yizhan::domain::site::{Amenity, Kind, SiteDraft, Status};
use yizhan::index::cluster::{merc_x, merc_y};

use crate::helpers::{TestApp, draft, spawn_app};

const WORLD: &str = "-180,-90,180,90";

/// Clumps around Jinan and Qingdao plus a scatter over China.
fn sites(rng: &mut ChaCha8Rng, n: usize) -> Vec<SiteDraft> {
    (0..n)
        .map(|i| {
            let (lat, lon) = match i % 4 {
                0 => (
                    36.65 + rng.random_range(-0.05..0.05),
                    117.12 + rng.random_range(-0.05..0.05),
                ),
                1 => (
                    36.07 + rng.random_range(-0.01..0.01),
                    120.38 + rng.random_range(-0.01..0.01),
                ),
                2 => (rng.random_range(20.0..45.0), rng.random_range(80.0..125.0)),
                _ => (
                    36.65 + rng.random_range(-0.0003..0.0003),
                    117.0 + rng.random_range(-0.0003..0.0003),
                ),
            };
            let mut d = draft(i, Kind::ALL[rng.random_range(0..4)], lat, lon);
            if rng.random_bool(0.4) {
                d.amenities.insert(Amenity::EbikeCharging);
            }
            d
        })
        .collect()
}

async fn world_total(app: &TestApp, zoom: u8, extra: &str) -> (u64, Value) {
    let body = app
        .get_json(&format!(
            "/v1/sites/clusters?bbox={WORLD}&zoom={zoom}{extra}"
        ))
        .await;
    let clusters = body["clusters"].as_array().unwrap();
    let mut sum = 0;
    for c in clusters {
        let count = c["count"].as_u64().unwrap();
        let by_kind: u64 = c["counts_by_kind"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_kind, count, "{c}");
        if count == 1 {
            assert!(c["site"].is_object(), "a lone site carries its site: {c}");
            assert!(c["expansion_zoom"].is_null());
            assert_eq!(c["lat"], c["site"]["lat"]);
            assert_eq!(c["lon"], c["site"]["lon"]);
        } else {
            assert!(c["site"].is_null());
            assert!(c["expansion_zoom"].as_u64().unwrap() > u64::from(zoom));
        }
        sum += count;
    }
    assert_eq!(body["total"].as_u64().unwrap(), sum);
    assert_eq!(body["truncated"], false);
    assert_eq!(body["zoom"], zoom);
    (sum, body)
}

#[tokio::test]
async fn world_counts_add_up_at_every_zoom_for_every_filter() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let drafts = sites(&mut rng, 800);
    let charging = drafts
        .iter()
        .filter(|d| d.amenities.contains(Amenity::EbikeCharging))
        .count() as u64;
    let mothers = drafts.iter().filter(|d| d.kind == Kind::MotherRoom).count() as u64;
    let app = spawn_app(drafts).await;
    for zoom in 0..=20 {
        for crs in ["wgs84", "gcj02", "bd09"] {
            let (n, _) = world_total(&app, zoom, &format!("&crs={crs}")).await;
            assert_eq!(n, 800, "zoom {zoom} {crs}");
        }
        let (n, _) = world_total(&app, zoom, "&amenity=ebike_charging").await;
        assert_eq!(n, charging, "zoom {zoom} charging");
        let (n, _) = world_total(&app, zoom, "&kind=mother_room").await;
        assert_eq!(n, mothers, "zoom {zoom} mother rooms");
    }
    // Zoomed out, sites are clustered; at 20 every site stands alone.
    let (_, body) = world_total(&app, 3, "").await;
    assert!(body["clusters"].as_array().unwrap().len() < 100);
    let (_, body) = world_total(&app, 20, "").await;
    assert_eq!(body["clusters"].as_array().unwrap().len(), 800);
}

#[tokio::test]
async fn a_box_counts_every_site_inside_it_in_gcj02() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let drafts = sites(&mut rng, 600);
    let app = spawn_app(drafts.clone()).await;
    // A GCJ-02 box around Jinan at a city zoom: every site inside is counted.
    let gcj: Vec<(f64, f64)> = drafts
        .iter()
        .map(|d| from_wgs84(Crs::Gcj02, d.lat, d.lon))
        .collect();
    let b = [117.0, 36.55, 117.2, 36.75];
    let inside = gcj
        .iter()
        .filter(|(lat, lon)| *lon >= b[0] && *lon <= b[2] && *lat >= b[1] && *lat <= b[3])
        .count() as u64;
    assert!(inside > 100);
    for zoom in [8, 11, 14, 17, 20] {
        let body = app
            .get_json(&format!(
                "/v1/sites/clusters?bbox={},{},{},{}&zoom={zoom}&crs=gcj02",
                b[0], b[1], b[2], b[3]
            ))
            .await;
        let total = body["total"].as_u64().unwrap();
        assert!(total >= inside, "zoom {zoom}: {total} < {inside}");
        if zoom == 20 {
            // Lone sites only: exactly the sites inside (the box was widened for
            // the datum shift, so count those inside by their returned GCJ-02 position).
            let lone_inside = body["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| {
                    let (lat, lon) = (c["lat"].as_f64().unwrap(), c["lon"].as_f64().unwrap());
                    lon >= b[0] && lon <= b[2] && lat >= b[1] && lat <= b[3]
                })
                .count() as u64;
            assert_eq!(lone_inside, inside);
        }
    }
}

#[tokio::test]
async fn clusters_follow_sites_added_moved_and_retired() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut drafts = sites(&mut rng, 300);
    let app = spawn_app(drafts.clone()).await;
    let store = app.service.state.store.clone();
    // Warm a filtered hierarchy so that it, too, must follow the edits.
    let before = world_total(&app, 6, "&kind=union_station").await.0;

    let mut added: Vec<SiteDraft> = (1000..1040)
        .map(|i| draft(i, Kind::UnionStation, 36.66, 117.13))
        .collect();
    drafts[0].status = Status::Retired;
    drafts[1].lat = 23.13; // moved to Guangzhou
    drafts[1].lon = 113.26;
    let retired_union = usize::from(drafts[0].kind == Kind::UnionStation) as u64;
    added.push(drafts[0].clone());
    added.push(drafts[1].clone());
    store.import_sites(added, chrono::Utc::now()).await.unwrap();
    app.service.catch_up().await.unwrap();

    for zoom in [0, 6, 12, 20] {
        assert_eq!(
            world_total(&app, zoom, "").await.0,
            300 + 40 - 1,
            "zoom {zoom}"
        );
        assert_eq!(
            world_total(&app, zoom, "&kind=union_station").await.0,
            before + 40 - retired_union,
            "zoom {zoom}"
        );
    }
    // The moved site is where it went.
    let body = app
        .get_json("/v1/sites/clusters?bbox=113,23,114,24&zoom=20")
        .await;
    let refs: Vec<&str> = body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["site"]["ref"].as_str())
        .collect();
    assert_eq!(refs, vec!["test-1"]);
}

#[tokio::test]
async fn clusters_and_tiles_have_etags() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    for path in [
        "/v1/sites/clusters?bbox=117,36,118,37&zoom=9",
        "/v1/tiles/9/422/199.mvt",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200);
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        let other = app
            .client
            .get(app.url(path))
            .header("if-none-match", "\"nope\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
    }
}

fn tile_of(z: u8, lat: f64, lon: f64) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    ((merc_x(lon) * n) as u32, (merc_y(lat) * n) as u32)
}

fn props(f: &mvt_reader::feature::Feature) -> HashMap<String, MvtValue> {
    f.properties.clone().unwrap_or_default()
}

fn uint(v: &MvtValue) -> u64 {
    match v {
        MvtValue::UInt(n) => *n,
        MvtValue::Int(n) | MvtValue::SInt(n) => *n as u64,
        other => panic!("not an integer: {other:?}"),
    }
}

/// Decode a tile with mvt-reader and compare it with the clusters endpoint.
async fn check_tile(app: &TestApp, z: u8, x: u32, y: u32, crs: &str) -> usize {
    let r = app
        .get(&format!("/v1/tiles/{z}/{x}/{y}.mvt?crs={crs}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.mapbox-vector-tile"
    );
    let bytes = r.bytes().await.unwrap().to_vec();
    let reader = Reader::new(bytes).expect("a valid tile");
    assert_eq!(reader.get_layer_names().unwrap(), vec!["sites".to_owned()]);
    let meta = reader.get_layer_metadata().unwrap();
    assert_eq!(meta[0].extent, 4096);
    assert_eq!(meta[0].version, 2);
    let features = reader.get_features(0).unwrap();

    // What the clusters endpoint says about the same tile (its exact bounds).
    let n = f64::from(1u32 << z);
    let (lon0, lon1) = (
        f64::from(x) / n * 360.0 - 180.0,
        f64::from(x + 1) / n * 360.0 - 180.0,
    );
    let lat_of = |yy: f64| {
        (std::f64::consts::PI * (1.0 - 2.0 * yy / n))
            .sinh()
            .atan()
            .to_degrees()
    };
    let (lat1, lat0) = (lat_of(f64::from(y)), lat_of(f64::from(y + 1)));
    let body = app
        .get_json(&format!(
            "/v1/sites/clusters?bbox={lon0},{lat0},{lon1},{lat1}&zoom={z}&crs={crs}"
        ))
        .await;
    let mut expected: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    let mut expected_ids = BTreeSet::new();
    for c in body["clusters"].as_array().unwrap() {
        let (lat, lon) = (c["lat"].as_f64().unwrap(), c["lon"].as_f64().unwrap());
        let px = ((merc_x(lon) * n - f64::from(x)) * 4096.0).round() as i64;
        let py = ((merc_y(lat) * n - f64::from(y)) * 4096.0).round() as i64;
        if (0..4096).contains(&px) && (0..4096).contains(&py) {
            *expected.entry((px, py)).or_default() += c["count"].as_u64().unwrap();
            if let Some(id) = c["site"]["id"].as_str() {
                expected_ids.insert(id.to_owned());
            }
        }
    }
    let mut got: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    let mut got_ids = BTreeSet::new();
    for f in &features {
        // mvt-reader reads a point feature as a one-point MultiPoint.
        let p = match f.get_geometry() {
            geo::Geometry::Point(p) => *p,
            geo::Geometry::MultiPoint(mp) if mp.0.len() == 1 => mp.0[0],
            other => panic!("a single-point feature: {other:?}"),
        };
        let (px, py) = (p.x() as i64, p.y() as i64);
        let pr = props(f);
        let count = uint(&pr["point_count"]);
        match &pr["cluster"] {
            MvtValue::Bool(true) => {
                assert!(count > 1);
                let by_kind: u64 = Kind::ALL
                    .iter()
                    .map(|k| uint(&pr[&format!("count_{}", k.as_str())]))
                    .sum();
                assert_eq!(by_kind, count);
                assert!(uint(&pr["expansion_zoom"]) > u64::from(z));
                assert!(matches!(pr["point_count_abbreviated"], MvtValue::String(_)));
                assert_eq!(f.id, None);
            }
            MvtValue::Bool(false) => {
                assert_eq!(count, 1);
                let MvtValue::String(id) = &pr["id"] else {
                    panic!("id")
                };
                assert!(matches!(pr["name"], MvtValue::String(_)));
                assert!(matches!(pr["is_open"], MvtValue::Bool(_)));
                assert!(f.id.is_some());
                if (0..4096).contains(&px) && (0..4096).contains(&py) {
                    got_ids.insert(id.clone());
                }
            }
            other => panic!("cluster tag: {other:?}"),
        }
        assert!(
            (-512..=4608).contains(&px) && (-512..=4608).contains(&py),
            "inside the buffer"
        );
        if (0..4096).contains(&px) && (0..4096).contains(&py) {
            *got.entry((px, py)).or_default() += count;
        }
    }
    assert_eq!(
        got, expected,
        "tile {z}/{x}/{y} {crs}: features inside the tile"
    );
    assert_eq!(got_ids, expected_ids);
    features.len()
}

#[tokio::test]
async fn tiles_decode_with_an_independent_decoder_and_match_the_clusters() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let app = spawn_app(sites(&mut rng, 1000)).await;
    let mut seen = 0;
    for (z, crs) in [
        (0, "wgs84"),
        (4, "wgs84"),
        (9, "gcj02"),
        (12, "wgs84"),
        (14, "bd09"),
        (18, "gcj02"),
        (20, "wgs84"),
    ] {
        let (x, y) = tile_of(z, 36.65, 117.12);
        seen += check_tile(&app, z, x, y, crs).await;
        let (x, y) = tile_of(z, 36.07, 120.38);
        seen += check_tile(&app, z, x, y, crs).await;
    }
    assert!(seen > 50, "tiles held {seen} features");
    // A tile with nothing in it is a valid, empty tile.
    assert_eq!(check_tile(&app, 5, 0, 0, "wgs84").await, 0);
}
