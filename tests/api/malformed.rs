//! Every parameter of every endpoint, given a malformed value, answers 400
//! problem+json naming that parameter — never a 5xx, never a panic. A path id
//! not of its resource's form names nothing: 404, naming `id`.

use serde_json::Value;
use yizhan::domain::site::Kind;

use crate::helpers::{TestApp, draft, spawn_app};

async fn expect_400(app: &TestApp, path: &str, param: &str) {
    let r = app.get(path).await;
    assert_eq!(r.status(), 400, "{path}");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], 400, "{path}");
    assert_eq!(p["param"], param, "{path}: {p}");
    assert!(
        p["detail"].as_str().unwrap().starts_with(param),
        "{path}: {p}"
    );
    assert!(
        p["type"].is_string() && p["title"].is_string(),
        "{path}: {p}"
    );
}

/// 404 problem+json naming the path parameter `id`.
async fn expect_404_id(r: reqwest::Response, path: &str) {
    assert_eq!(r.status(), 404, "{path}");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], 404, "{path}");
    assert_eq!(p["param"], "id", "{path}: {p}");
    assert!(
        p["detail"].as_str().unwrap().starts_with("id"),
        "{path}: {p}"
    );
}

const OK: &str = "lat=36.65&lon=117.12";

/// The contract (openapi.yaml) gives every path id a pattern and documents
/// 404 for it; an id outside the pattern (the all-zero one included) is 404.
#[tokio::test]
async fn path_ids_not_of_their_form_are_404_naming_id() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let admin = app
        .token_for("13800000009", yizhan::domain::user::Role::Admin, &[])
        .await;
    for path in [
        "/v1/sites/s000000000000",
        "/v1/sites/0",
        "/v1/sites/s000000000000/history",
        "/v1/events/e000000000000",
        "/v1/events/x/attendees",
        "/v1/bookings/b000000000000",
        "/v1/unions/u000000000000",
        "/v1/memberships/m000000000000",
        "/v1/users/x",
    ] {
        let r = app
            .call(reqwest::Method::GET, path, Some(&admin), None, None)
            .await;
        expect_404_id(r, path).await;
    }
    for (method, path) in [
        (
            reqwest::Method::DELETE,
            "/v1/push/subscriptions/p000000000000",
        ),
        (reqwest::Method::POST, "/v1/me/notifications/0/read"),
        (reqwest::Method::PUT, "/v1/sites/S0000000000001/follow"),
        (reqwest::Method::POST, "/v1/memberships/nope/withdraw"),
    ] {
        let r = app.call(method, path, Some(&admin), None, None).await;
        expect_404_id(r, path).await;
    }
}

#[tokio::test]
async fn nearby_rejects_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let bad: &[(&str, &[&str])] = &[
        (
            "lat",
            &[
                "", "abc", "NaN", "nan", "inf", "-inf", "90.0001", "-91", "1e999", "36,65", "0x10",
            ],
        ),
        ("lon", &["", "east", "NaN", "180.5", "-181", "Infinity"]),
        ("crs", &["", "WGS84", "gcj-02", "epsg:4326", "mars"]),
        (
            "k",
            &[
                "0",
                "1000",
                "101",
                "-1",
                "1.5",
                "ten",
                "",
                "99999999999999999999",
            ],
        ),
        ("radius_m", &["0", "-5", "200001", "NaN", "far", ""]),
        (
            "kind",
            &[
                "",
                "cafe",
                "outdoor_station,",
                ",mother_room",
                "OUTDOOR_STATION",
            ],
        ),
        ("amenity", &["", "sauna", "microwave,,wifi", "Wifi"]),
        (
            "at",
            &[
                "",
                "yesterday",
                "2026-13-01T00:00:00Z",
                "2026-11-21",
                "2026-11-21T25:00:00+08:00",
            ],
        ),
        ("open", &["", "yes", "TRUE", "2"]),
    ];
    for (param, values) in bad {
        for v in *values {
            let enc: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            let query = match *param {
                "lat" => format!("lat={enc}&lon=117.12"),
                "lon" => format!("lat=36.65&lon={enc}"),
                _ => format!("{OK}&{param}={enc}"),
            };
            expect_400(&app, &format!("/v1/sites/nearby?{query}"), param).await;
        }
    }
    // Missing required parameters and repeated ones.
    expect_400(&app, "/v1/sites/nearby?lon=117.12", "lat").await;
    expect_400(&app, "/v1/sites/nearby?lat=36.65", "lon").await;
    expect_400(&app, &format!("/v1/sites/nearby?{OK}&k=5&k=6"), "k").await;
    // Percent-garbage in the query string still gets a clean answer.
    let r = app.get(&format!("/v1/sites/nearby?{OK}&kind=%FF%FE")).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn site_detail_rejects_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    for id in [
        "x",
        "123",
        "s",
        "s00000000000000000",
        "S0000000000001",
        "%E4%B8%AD",
    ] {
        let path = format!("/v1/sites/{id}");
        expect_404_id(app.get(&path).await, &path).await;
    }
    let body = app.get_json(&format!("/v1/sites/nearby?{OK}")).await;
    let id = body["items"][0]["id"].as_str().unwrap().to_owned();
    for v in ["", "wgs-84", "BD09"] {
        expect_400(&app, &format!("/v1/sites/{id}?crs={v}"), "crs").await;
    }
    for v in ["", "now", "2026-02-30T00:00:00Z"] {
        expect_400(&app, &format!("/v1/sites/{id}?at={v}"), "at").await;
    }
}

#[tokio::test]
async fn changes_rejects_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let bad: &[(&str, &[&str])] = &[
        ("since", &["", "-1", "abc", "1.5", "99999999999999999999"]),
        ("limit", &["", "0", "5001", "-3", "many"]),
        ("crs", &["", "GCJ02", "mars"]),
    ];
    for (param, values) in bad {
        for v in *values {
            let enc: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            expect_400(&app, &format!("/v1/sites/changes?{param}={enc}"), param).await;
        }
    }
}

#[tokio::test]
async fn viewport_rejects_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let ok = "bbox=117,36,118,37";
    for v in [
        "",
        "1,2,3",
        "1,2,3,4,5",
        "a,36,118,37",
        "117,36,118,NaN",
        "117,37,118,36",
        "-181,0,0,1",
        "0,-91,1,0",
        "117,,118,37",
    ] {
        let enc: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
        expect_400(&app, &format!("/v1/sites?bbox={enc}"), "bbox").await;
    }
    expect_400(&app, "/v1/sites", "bbox").await;
    for (param, values) in [
        ("crs", &["", "WGS84"][..]),
        ("kind", &["", "cafe"][..]),
        ("amenity", &["sauna", ","][..]),
        ("limit", &["0", "5001", "x"][..]),
        ("at", &["yesterday"][..]),
    ] {
        for v in values {
            expect_400(&app, &format!("/v1/sites?{ok}&{param}={v}"), param).await;
        }
    }
}

#[tokio::test]
async fn search_rejects_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    expect_400(&app, "/v1/sites/search", "q").await;
    for v in ["", "%20%20", "a", "%E9%A9%BF", "ab%20c", &"ab%20".repeat(9)] {
        expect_400(&app, &format!("/v1/sites/search?q={v}"), "q").await;
    }
    let ok = "q=%E9%A9%BF%E7%AB%99";
    for (param, values) in [
        ("lat", &["abc", "91"][..]),
        ("lon", &["x", "-181"][..]),
        ("crs", &["", "bd-09"][..]),
        ("kind", &["cafe", ""][..]),
        ("limit", &["0", "101", "z"][..]),
        ("at", &["2026"][..]),
    ] {
        for v in values {
            let extra = match param {
                "lat" => "&lon=117",
                "lon" => "&lat=36",
                _ => "",
            };
            expect_400(
                &app,
                &format!("/v1/sites/search?{ok}&{param}={v}{extra}"),
                param,
            )
            .await;
        }
    }
    expect_400(&app, &format!("/v1/sites/search?{ok}&lat=36"), "lon").await;
    expect_400(&app, &format!("/v1/sites/search?{ok}&lon=117"), "lat").await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app(vec![]).await;
    let r = app.get("/v1/nope").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .client
        .post(app.url("/v1/sites/nearby"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

/// Random query strings — random parameter names from the real ones, random
/// values mixing valid, boundary and garbage — never produce a 5xx or a non-problem error.
#[tokio::test]
async fn clusters_reject_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let ok = "bbox=117,36,118,37&zoom=10";
    expect_400(&app, "/v1/sites/clusters?zoom=3", "bbox").await;
    expect_400(&app, "/v1/sites/clusters?bbox=117,36,118,37", "zoom").await;
    expect_400(&app, "/v1/sites/clusters?bbox=117,37,118,36&zoom=3", "bbox").await;
    for (param, values) in [
        (
            "zoom",
            &["", "-1", "21", "3.5", "ten", "99999999999999999999"][..],
        ),
        ("crs", &["", "WGS84"][..]),
        ("kind", &["", "cafe"][..]),
        ("amenity", &["sauna", ","][..]),
        ("limit", &["0", "50001", "x"][..]),
        ("at", &["yesterday"][..]),
    ] {
        for v in values {
            let base = if param == "zoom" {
                "bbox=117,36,118,37"
            } else {
                ok
            };
            expect_400(
                &app,
                &format!("/v1/sites/clusters?{base}&{param}={v}"),
                param,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn tiles_reject_every_malformed_parameter() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    for (path, param) in [
        ("/v1/tiles/21/0/0.mvt", "z"),
        ("/v1/tiles/-1/0/0.mvt", "z"),
        ("/v1/tiles/x/0/0.mvt", "z"),
        ("/v1/tiles/0/1/0.mvt", "x"),
        ("/v1/tiles/3/8/0.mvt", "x"),
        ("/v1/tiles/3/-1/0.mvt", "x"),
        ("/v1/tiles/3/0/8.mvt", "y"),
        ("/v1/tiles/3/0/0.pbf", "y"),
        ("/v1/tiles/3/0/0", "y"),
        ("/v1/tiles/3/0/.mvt", "y"),
        ("/v1/tiles/12/3381/1582.mvt?crs=mars", "crs"),
        ("/v1/tiles/12/3381/1582.mvt?kind=cafe", "kind"),
        ("/v1/tiles/12/3381/1582.mvt?amenity=sauna", "amenity"),
        ("/v1/tiles/12/3381/1582.mvt?at=soon", "at"),
    ] {
        expect_400(&app, path, param).await;
    }
}

#[tokio::test]
async fn random_query_strings_never_fail_the_server() {
    use rand::{Rng, SeedableRng};
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let body = app.get_json(&format!("/v1/sites/nearby?{OK}")).await;
    let id = body["items"][0]["id"].as_str().unwrap().to_owned();
    let names = [
        "lat", "lon", "crs", "k", "radius_m", "kind", "amenity", "at", "open", "x", "bbox", "zoom",
        "limit",
    ];
    let values = [
        "0",
        "-0",
        "90",
        "-90",
        "180",
        "-180",
        "1e308",
        "-1e-320",
        "NaN",
        "",
        " ",
        "%00",
        "1",
        "100",
        "101",
        "200000",
        "true",
        "gcj02",
        "bd09",
        "wgs84",
        "outdoor_station,mother_room",
        "microwave,ebike_charging",
        "117,36,118,37",
        "170,-10,-170,10",
        "-180,-90,180,90",
        "2026-11-21T12:00:00+08:00",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "中文",
        "'",
        "\"",
        "&&",
        "%E4%B8",
        "%",
        "+",
        "=",
        "==",
        ";",
        "\\",
        "a".repeat(3000).leak(),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for i in 0..600 {
        let n = rng.random_range(0..6);
        let q: Vec<String> = (0..n)
            .map(|_| {
                format!(
                    "{}={}",
                    names[rng.random_range(0..names.len())],
                    values[rng.random_range(0..values.len())]
                )
            })
            .collect();
        let path = match i % 5 {
            0 => format!("/v1/sites/{id}"),
            1 => "/v1/sites/clusters".to_owned(),
            2 => format!("/v1/tiles/{}/{}/{}.mvt", i % 4, i % 3, i % 2),
            _ => "/v1/sites/nearby".to_owned(),
        };
        let r = app.get(&format!("{path}?{}", q.join("&"))).await;
        let status = r.status();
        assert!(
            status == 200 || status == 400,
            "{path}?{}: {status}",
            q.join("&")
        );
        if status == 400 {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
}

/// What the contract says of every operation before any handler runs: a
/// request line or headers past what the server reads are 414 and 431,
/// with no body.
#[tokio::test]
async fn oversized_request_lines_and_headers_are_414_and_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(vec![]).await;
    let status_of = |request: Vec<u8>| async move {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1).unwrap_or_default().to_owned();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    };
    let long_uri = format!(
        "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    assert_eq!(
        status_of(long_uri.into_bytes()).await,
        ("414".to_owned(), String::new())
    );
    // More header fields than the server reads (hyper's 100).
    let fields: String = (0..200).map(|i| format!("X-Field-{i}: a\r\n")).collect();
    let big_header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
    assert_eq!(
        status_of(big_header.into_bytes()).await,
        ("431".to_owned(), String::new())
    );
}

/// Problem types are absolute URIs under the server's base, each answers a
/// page for people, and `detail` and `title` are Chinese when
/// `Accept-Language` prefers it (English otherwise).
#[tokio::test]
async fn problems_name_their_type_page_and_speak_chinese_when_asked() {
    let app = spawn_app(vec![]).await;
    let base = format!("http://{}", app.addr);
    let ask = |lang: Option<&'static str>| {
        let mut r = app
            .client
            .get(format!("{base}/v1/sites/nearby?lat=91&lon=117"));
        if let Some(l) = lang {
            r = r.header("Accept-Language", l);
        }
        r.send()
    };
    let en: Value = ask(None).await.unwrap().json().await.unwrap();
    assert_eq!(en["type"], format!("{base}/problems/invalid-parameter"));
    assert_eq!(en["param"], "lat");
    assert_eq!(en["title"], "Invalid parameter");
    assert!(en["detail"].as_str().unwrap().starts_with("lat: "), "{en}");
    for lang in ["zh-CN", "en;q=0.5, zh-Hans;q=0.8", "zh"] {
        let zh: Value = ask(Some(lang)).await.unwrap().json().await.unwrap();
        assert_eq!(zh["type"], en["type"], "{lang}");
        assert_eq!(zh["param"], "lat");
        assert_eq!(zh["title"], "参数有误");
        assert_eq!(zh["detail"], "参数 `lat` 格式不对或超出范围。", "{lang}");
    }
    for lang in ["en-US", "en, zh;q=0.5", "zh;q=0"] {
        let other: Value = ask(Some(lang)).await.unwrap().json().await.unwrap();
        assert_eq!(other["title"], "Invalid parameter", "{lang}");
    }
    // The type answers a page for people; an unknown kind is a problem.
    let page = app
        .client
        .get(en["type"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("参数有误") && html.contains("Invalid parameter"),
        "{html}"
    );
    let index = app.get("/problems/").await.text().await.unwrap();
    for t in yizhan::error::ProblemType::ALL {
        assert!(
            index.contains(&format!("href=\"{}\"", t.slug())),
            "{}",
            t.slug()
        );
    }
    let none = app.get("/problems/no-such-kind").await;
    assert_eq!(none.status(), 404);
}
