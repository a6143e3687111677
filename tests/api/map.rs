//! The viewport against a brute-force scan, antimeridian boxes included.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use yizhan::domain::coords::{Crs, from_wgs84};
use yizhan::domain::site::{Amenity, Kind, SiteDraft, Status};

use crate::helpers::{draft, spawn_app};

fn inside(b: [f64; 4], lat: f64, lon: f64) -> bool {
    let lon_ok = if b[0] > b[2] {
        lon >= b[0] || lon <= b[2]
    } else {
        lon >= b[0] && lon <= b[2]
    };
    lon_ok && lat >= b[1] && lat <= b[3]
}

fn random_sites(rng: &mut ChaCha8Rng) -> Vec<SiteDraft> {
    (0..3000)
        .map(|i| {
            let (lat, lon) = match i % 3 {
                0 => (
                    rng.random_range(-89.0..89.0),
                    rng.random_range(-180.0..180.0),
                ),
                1 => (
                    rng.random_range(-20.0..20.0),
                    if rng.random() {
                        rng.random_range(175.0..=180.0)
                    } else {
                        rng.random_range(-180.0..-175.0)
                    },
                ),
                _ => (rng.random_range(34.0..38.0), rng.random_range(115.0..122.0)),
            };
            let mut d = draft(i, Kind::ALL[i % 4], lat, lon);
            if rng.random_bool(0.3) {
                d.amenities.insert(Amenity::Microwave);
            }
            if rng.random_bool(0.05) {
                d.status = Status::Retired;
            }
            d
        })
        .collect()
}

fn random_box(rng: &mut ChaCha8Rng) -> [f64; 4] {
    let lat0: f64 = rng.random_range(-90.0..90.0);
    let lat1 = (lat0 + rng.random_range(0.0..60.0)).min(90.0);
    let (lon0, lon1) = match rng.random_range(0..3) {
        // Crossing the antimeridian.
        0 => (
            rng.random_range(150.0..180.0),
            rng.random_range(-180.0..-150.0),
        ),
        // Dense Shandong area.
        1 => {
            let a = rng.random_range(114.0..121.0);
            (a, a + rng.random_range(0.1..3.0))
        }
        _ => {
            let a: f64 = rng.random_range(-180.0..170.0);
            (a, (a + rng.random_range(0.0..120.0)).min(180.0))
        }
    };
    [lon0, lat0, lon1, lat1]
}

#[tokio::test]
async fn viewport_matches_brute_force_for_random_boxes() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let sites = random_sites(&mut rng);
    let app = spawn_app(sites.clone()).await;
    for i in 0..150 {
        let crs = Crs::ALL[i % 3];
        let mut b = random_box(&mut rng);
        if i % 5 == 0 {
            b[1] = 33.0;
            b[3] = 39.0;
            b[0] = 114.0;
            b[2] = 123.0;
        }
        let filter = i % 4 == 0;
        let path = format!(
            "/v1/sites?bbox={},{},{},{}&crs={}&limit=5000{}",
            b[0],
            b[1],
            b[2],
            b[3],
            crs.as_str(),
            if filter {
                "&kind=mother_room,union_station&amenity=microwave"
            } else {
                ""
            }
        );
        let r = app.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/geo+json");
        let fc: Value = r.json().await.unwrap();
        assert_eq!(fc["type"], "FeatureCollection");
        let got: BTreeSet<String> = fc["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["properties"]["ref"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = sites
            .iter()
            .filter(|d| d.status != Status::Retired)
            .filter(|d| {
                !filter
                    || (matches!(d.kind, Kind::MotherRoom | Kind::UnionStation)
                        && d.amenities.contains(Amenity::Microwave))
            })
            .filter(|d| {
                let (lat, lon) = from_wgs84(crs, d.lat, d.lon);
                inside(b, lat, lon)
            })
            .map(|d| d.ext_ref.clone().unwrap())
            .collect();
        assert_eq!(got, want, "{path}");
        assert_eq!(
            fc["metadata"]["total"].as_u64().unwrap() as usize,
            want.len()
        );
        assert_eq!(fc["metadata"]["truncated"], false);
    }
}

#[tokio::test]
async fn past_the_limit_the_viewport_says_truncated() {
    let sites = (0..30)
        .map(|i| draft(i, Kind::OutdoorStation, 36.6 + i as f64 * 0.001, 117.1))
        .collect();
    let app = spawn_app(sites).await;
    let fc = app.get_json("/v1/sites?bbox=117,36,118,37&limit=10").await;
    assert_eq!(fc["features"].as_array().unwrap().len(), 10);
    assert_eq!(fc["metadata"]["truncated"], true);
    assert_eq!(fc["metadata"]["total"], 30);
    let fc = app.get_json("/v1/sites?bbox=117,36,118,37").await;
    assert_eq!(fc["features"].as_array().unwrap().len(), 30);
    assert_eq!(fc["metadata"]["truncated"], false);
}

#[tokio::test]
async fn viewport_etag_gives_304_until_the_sites_change() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let path = "/v1/sites?bbox=117,36,118,37";
    let r = app.get(path).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        app.get(path).await.headers()["etag"].to_str().unwrap(),
        etag,
        "stable across requests"
    );
    let cond = |tag: String| {
        app.client
            .get(app.url(path))
            .header("if-none-match", tag)
            .send()
    };
    assert_eq!(cond(etag.clone()).await.unwrap().status(), 304);
    // Another site in the box: a new body, a new tag.
    let other = yizhan::store::connect(&app.database_url).await.unwrap();
    other
        .import_sites(
            vec![draft(2, Kind::MotherRoom, 36.7, 117.2)],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    app.service.catch_up().await.unwrap();
    let r = cond(etag.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
}
