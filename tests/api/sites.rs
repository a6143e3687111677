use serde_json::Value;
use yizhan::domain::coords::{gcj02_to_wgs84, wgs84_to_gcj02};
use yizhan::domain::site::{Amenity, Kind, Status};

use crate::helpers::{draft, refs, spawn_app};

// Jinan (济南) city centre, WGS-84.
const JINAN: (f64, f64) = (36.6512, 117.1201);

#[tokio::test]
async fn nearby_orders_by_distance_and_filters() {
    let mut a = draft(1, Kind::OutdoorStation, 36.6600, 117.1200); // ~1 km north
    a.amenities = [Amenity::Microwave, Amenity::EbikeCharging]
        .into_iter()
        .collect();
    let mut b = draft(2, Kind::OutdoorStation, 36.6520, 117.1201); // ~90 m
    b.amenities = [Amenity::Microwave].into_iter().collect();
    let c = draft(3, Kind::MotherRoom, 36.6515, 117.1201); // ~30 m
    let mut d = draft(4, Kind::OutdoorStation, 36.6513, 117.1201); // ~10 m, but retired
    d.status = Status::Retired;
    let app = spawn_app(vec![a, b, c, d]).await;

    let body = app
        .get_json(&format!("/v1/sites/nearby?lat={}&lon={}", JINAN.0, JINAN.1))
        .await;
    assert_eq!(
        refs(&body),
        ["test-3", "test-2", "test-1"],
        "nearest first, retired never"
    );
    let d0 = body["items"][0]["distance_m"].as_f64().unwrap();
    assert!((20.0..40.0).contains(&d0), "{d0}");

    let body = app
        .get_json(&format!(
            "/v1/sites/nearby?lat={}&lon={}&kind=outdoor_station&amenity=microwave,ebike_charging",
            JINAN.0, JINAN.1
        ))
        .await;
    assert_eq!(refs(&body), ["test-1"]);
    assert_eq!(
        body["items"][0]["amenities"],
        serde_json::json!(["microwave", "ebike_charging"])
    );

    let body = app
        .get_json(&format!(
            "/v1/sites/nearby?lat={}&lon={}&radius_m=50",
            JINAN.0, JINAN.1
        ))
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn nearby_in_gcj02_round_trips_coordinates() {
    let app = spawn_app(vec![draft(1, Kind::UnionStation, 36.66, 117.12)]).await;
    let (glat, glon) = wgs84_to_gcj02(JINAN.0, JINAN.1);
    let body = app
        .get_json(&format!("/v1/sites/nearby?lat={glat}&lon={glon}&crs=gcj02"))
        .await;
    assert_eq!(body["crs"], "gcj02");
    let item = &body["items"][0];
    let (lat, lon) = gcj02_to_wgs84(item["lat"].as_f64().unwrap(), item["lon"].as_f64().unwrap());
    assert!(
        (lat - 36.66).abs() < 1e-5 && (lon - 117.12).abs() < 1e-5,
        "{lat},{lon}"
    );
    // The distance is the same whichever crs the query used.
    let wgs = app
        .get_json(&format!("/v1/sites/nearby?lat={}&lon={}", JINAN.0, JINAN.1))
        .await;
    let (a, b) = (
        item["distance_m"].as_f64().unwrap(),
        wgs["items"][0]["distance_m"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1.0, "{a} vs {b}");
}

#[tokio::test]
async fn opening_hours_and_status_decide_is_open() {
    let mut office = draft(1, Kind::UnionStation, 36.652, 117.12);
    office.opening_hours = "Mo-Fr 09:00-17:00; PH off".into();
    let mut closed = draft(2, Kind::UnionStation, 36.653, 117.12);
    closed.status = Status::TemporarilyClosed;
    let app = spawn_app(vec![office, closed]).await;
    // Wednesday 2026-11-18 10:00 in Shanghai = 02:00 UTC.
    let q = |at: &str, open: bool| {
        format!(
            "/v1/sites/nearby?lat={}&lon={}&at={at}&open={open}",
            JINAN.0, JINAN.1
        )
    };
    let body = app.get_json(&q("2026-11-18T02:00:00Z", false)).await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["is_open"], true);
    assert_eq!(items[0]["next_change"], "2026-11-18T09:00:00.000Z");
    assert_eq!(
        items[1]["is_open"], false,
        "temporarily closed is never open"
    );
    let body = app.get_json(&q("2026-11-18T02:00:00Z", true)).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    // National Day 2026-10-01 (Thursday) is a public holiday: closed.
    let body = app.get_json(&q("2026-10-01T02:00:00Z", true)).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn site_detail_with_etag() {
    let app = spawn_app(vec![draft(1, Kind::CraftsmanStudio, 36.66, 117.12)]).await;
    let body = app
        .get_json(&format!("/v1/sites/nearby?lat={}&lon={}", JINAN.0, JINAN.1))
        .await;
    let id = body["items"][0]["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/v1/sites/{id}")).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let site: Value = r.json().await.unwrap();
    assert_eq!(site["id"], id.as_str());
    assert_eq!(site["ref"], "test-1");
    assert_eq!(site["kind"], "craftsman_studio");
    assert_eq!(site["version"], 1);
    let r = app
        .client
        .get(app.url(&format!("/v1/sites/{id}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = app.get("/v1/sites/s000000000001").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn ops_endpoints() {
    let app = spawn_app(vec![draft(1, Kind::MotherRoom, 36.66, 117.12)]).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let _ = app
        .get(&format!("/v1/sites/nearby?lat={}&lon={}", JINAN.0, JINAN.1))
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("yizhan_indexed_sites 1"), "{text}");
    assert!(text.contains("route=\"/v1/sites/nearby\""), "{text}");
}

#[tokio::test]
async fn writes_by_another_process_reach_the_index_through_the_feed() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.70, 117.12)]).await;
    // Another process (here: a second connection, as `yizhan import` would open)
    // adds a site right at the query point and retires the first one.
    let other = yizhan::store::connect(&app.database_url).await.unwrap();
    let mut retired = draft(1, Kind::OutdoorStation, 36.70, 117.12);
    retired.status = Status::Retired;
    other
        .import_sites(
            vec![retired, draft(2, Kind::MotherRoom, JINAN.0, JINAN.1)],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    // On PostgreSQL the follower may have been woken by the commit's NOTIFY
    // and applied them already; either way they are in the index now.
    let applied = app.service.catch_up().await.unwrap();
    assert!(applied == 2 || applied == 0, "{applied}");
    let body = app
        .get_json(&format!("/v1/sites/nearby?lat={}&lon={}", JINAN.0, JINAN.1))
        .await;
    assert_eq!(refs(&body), ["test-2"]);
    // Caught up: nothing more to apply.
    assert_eq!(app.service.catch_up().await.unwrap(), 0);
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let drafts = (0..50)
        .map(|i| draft(i, Kind::OutdoorStation, 36.65 + i as f64 * 1e-3, 117.12))
        .collect();
    let app = spawn_app(drafts).await;
    let path = format!("/v1/sites/nearby?lat={}&lon={}&k=50", JINAN.0, JINAN.1);
    for (accept, expect) in [
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("identity", None),
    ] {
        let r = app
            .client
            .get(app.url(&path))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), expect, "{accept}");
        let body = r.bytes().await.unwrap();
        if accept == "gzip" {
            assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
        }
    }
}

/// Every way the store reads a site back gives what was written, on either
/// backend: one by one, all at once (which SQLite reads as chunks of JSON it
/// makes itself), and as the index takes them. The content is what breaks
/// such paths: quotes, backslashes and control characters in text, a
/// coordinate that needs all 17 digits, photos, closures and a reopening time.
#[tokio::test]
async fn every_read_path_gives_back_what_was_written() {
    use chrono::TimeZone;
    use yizhan::domain::site::{Closure, SiteRecord};
    // Doubles one step from a short decimal: only 17 digits name them.
    let (lat_a, lon_b) = (36.651_234_5_f64.next_up(), 151.209_296_f64.next_down());
    let mut a = draft(1, Kind::OutdoorStation, lat_a, 117.12_f64.next_up());
    a.name = "站\"名\\ \u{1}\t和 'quotes' 🚲".into();
    a.address = "路 \\\" 号".into();
    a.phone = Some("0531-\"8\"".into());
    a.photos = vec!["https://img.example.cn/a\"b.jpg".into()];
    let t = |h| chrono::Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
    a.closure.exceptions = vec![Closure {
        from: t(1),
        to: t(5),
        reason: Some("清洁 \"消毒\"".into()),
    }];
    let mut b = draft(2, Kind::MotherRoom, (-33.868_82_f64).next_down(), lon_b);
    b.status = Status::TemporarilyClosed;
    b.closure.reason = Some("维修\n中".into());
    b.closure.reopens_at = Some(t(9));
    b.ext_ref = Some("ref with \"quote\"".into());
    b.phone = None;
    let mut c = draft(3, Kind::UnionStation, 0.1, -0.2);
    c.status = Status::Retired;
    let app = spawn_app(vec![a, b, c]).await;
    let store = yizhan::store::connect(&app.database_url).await.unwrap();
    let all = store.all_sites().await.unwrap();
    assert_eq!(all.len(), 3);
    for site in &all {
        let one = store.get_site(site.id).await.unwrap().unwrap();
        assert_eq!(&one, site, "all_sites and get_site disagree on {}", site.id);
        assert_eq!(one.draft.lat.to_bits(), site.draft.lat.to_bits());
    }
    let mut records = Vec::new();
    store
        .each_site_record(&mut |r: SiteRecord<'_>| {
            records.push((
                r.view.id,
                r.view.name.to_owned(),
                r.view.lat.to_bits(),
                r.view.lon.to_bits(),
                r.view.ext_ref.map(str::to_owned),
                r.view.phone.map(str::to_owned),
                r.version,
                r.exceptions,
            ))
        })
        .await
        .unwrap();
    let want: Vec<_> = all
        .iter()
        .map(|s| {
            (
                s.id,
                s.draft.name.clone(),
                s.draft.lat.to_bits(),
                s.draft.lon.to_bits(),
                s.draft.ext_ref.clone(),
                s.draft.phone.clone(),
                s.version,
                s.draft.closure.exceptions.clone(),
            )
        })
        .collect();
    assert_eq!(records, want);
    // The written drafts themselves, not only agreement between reads.
    let first = all
        .iter()
        .find(|s| s.draft.ext_ref.as_deref() == Some("test-1"))
        .unwrap();
    assert_eq!(first.draft.name, "站\"名\\ \u{1}\t和 'quotes' 🚲");
    assert_eq!(first.draft.lat, lat_a);
    assert_eq!(first.draft.closure.exceptions.len(), 1);
    let second = all
        .iter()
        .find(|s| s.draft.kind == Kind::MotherRoom)
        .unwrap();
    assert_eq!(second.draft.closure.reopens_at, Some(t(9)));
    assert_eq!(second.draft.closure.reason.as_deref(), Some("维修\n中"));
    assert_eq!(second.draft.lon, lon_b);
}
