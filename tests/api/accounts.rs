//! Sign-in by phone, roles and scopes, and site managers keeping sites current:
//! the authorization matrix, OTP expiry and lockout, rate limits, token
//! revocation and expiry, If-Match, invalid hours, and that a change shows in
//! the very next nearby query. Time moves by the test's clock, never by sleeping.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::site::Kind;
use yizhan::domain::user::{Phone, Role};

use crate::helpers::{TestApp, draft, spawn_app};

const PHONE: &str = "13812345678";

async fn request_code(app: &TestApp, phone: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        "/v1/auth/otp",
        None,
        Some(json!({"phone": phone})),
        None,
    )
    .await
}

async fn exchange(app: &TestApp, phone: &str, code: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({"phone": phone, "code": code})),
        None,
    )
    .await
}

fn sent_code(app: &TestApp, phone: &str) -> String {
    app.sms
        .last_code(&phone.parse::<Phone>().unwrap())
        .expect("a code was sent")
}

async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    r.json().await.unwrap()
}

/// A different 6-digit code.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn sign_in_with_a_code_then_me_then_logout() {
    let app = spawn_app(vec![]).await;
    let r = request_code(&app, "+86 138-1234-5678").await;
    assert_eq!(r.status(), 202);
    let code = sent_code(&app, PHONE);
    let p = problem(exchange(&app, PHONE, &wrong(&code)).await, 401).await;
    assert!(
        p["detail"].as_str().unwrap().contains("4 tries left"),
        "{p}"
    );
    // A real provider (here the test double) never leaves the code in the
    // clear for `yizhan admin code`: only the development log sender does.
    let store = &app.service.state.store;
    let pending = store
        .pending_dev_code(
            &PHONE.parse().unwrap(),
            app.service.state.auth.clock.now(),
            5,
        )
        .await
        .unwrap();
    assert_eq!(pending, None);
    let r = exchange(&app, "+8613812345678", &code).await;
    assert_eq!(r.status(), 200);
    // A token answer is never cached (RFC 6749 §5.1).
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"]["role"], "worker");
    assert_eq!(body["user"]["phone"], PHONE);
    // The code is used up.
    problem(exchange(&app, PHONE, &code).await, 401).await;

    let r = app
        .call(Method::GET, "/v1/me", Some(&token), None, None)
        .await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["phone"], PHONE);

    let r = app
        .call(Method::POST, "/v1/auth/logout", Some(&token), None, None)
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .call(Method::GET, "/v1/me", Some(&token), None, None)
        .await;
    let p = problem(r, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn codes_expire_after_five_minutes() {
    let app = spawn_app(vec![]).await;
    assert_eq!(request_code(&app, PHONE).await.status(), 202);
    let code = sent_code(&app, PHONE);
    app.clock.advance(Duration::from_secs(5 * 60));
    let p = problem(exchange(&app, PHONE, &code).await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    // A fresh code works.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(request_code(&app, PHONE).await.status(), 202);
    let code = sent_code(&app, PHONE);
    app.clock.advance(Duration::from_secs(4 * 60 + 59));
    assert_eq!(exchange(&app, PHONE, &code).await.status(), 200);
}

#[tokio::test]
async fn five_wrong_tries_kill_the_code() {
    let app = spawn_app(vec![]).await;
    assert_eq!(request_code(&app, PHONE).await.status(), 202);
    let code = sent_code(&app, PHONE);
    for left in (0..5).rev() {
        let p = problem(exchange(&app, PHONE, &wrong(&code)).await, 401).await;
        let detail = p["detail"].as_str().unwrap();
        if left > 0 {
            assert!(detail.contains(&format!("{left} tries left")), "{detail}");
        } else {
            assert!(detail.contains("too many wrong tries"), "{detail}");
        }
    }
    let p = problem(exchange(&app, PHONE, &code).await, 401).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("too many wrong tries"),
        "{p}"
    );
}

#[tokio::test]
async fn code_requests_are_rate_limited_per_phone_and_per_address() {
    let app = spawn_app(vec![]).await;
    assert_eq!(request_code(&app, PHONE).await.status(), 202);
    let r = request_code(&app, PHONE).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    problem(r, 429).await;
    // After the minute, again; five an hour at most.
    for _ in 0..4 {
        app.clock.advance(Duration::from_secs(61));
        assert_eq!(request_code(&app, PHONE).await.status(), 202);
    }
    app.clock.advance(Duration::from_secs(61));
    let r = request_code(&app, PHONE).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 60 && retry <= 3600, "{retry}");
    assert_eq!(app.sms.count(), 5, "a refused request sends nothing");

    // One address, many phones: ten a minute.
    app.clock.advance(Duration::from_secs(3600));
    for i in 0..10 {
        let phone = format!("1390000{i:04}");
        assert_eq!(request_code(&app, &phone).await.status(), 202, "{phone}");
    }
    problem(request_code(&app, "13911112222").await, 429).await;
}

#[tokio::test]
async fn phones_are_validated() {
    let app = spawn_app(vec![]).await;
    for bad in ["12345", "+1 415 555 2671", "23812345678", "", "1381234567x"] {
        let p = problem(request_code(&app, bad).await, 422).await;
        assert_eq!(p["param"], "phone", "{bad}");
    }
    let p = problem(
        app.call(
            Method::POST,
            "/v1/auth/otp",
            None,
            Some(json!({"phone": 13812345678u64})),
            None,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "phone");
    let p = problem(
        app.call(
            Method::POST,
            "/v1/auth/otp",
            None,
            Some(json!({"phone": PHONE, "x": 1})),
            None,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "x");
    let r = app
        .client
        .post(app.url("/v1/auth/otp"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert_eq!(p["param"], "body");
}

#[tokio::test]
async fn tokens_expire() {
    let app = spawn_app(vec![]).await;
    let token = app.token_for(PHONE, Role::Worker, &[]).await;
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&token), None, None)
            .await
            .status(),
        200
    );
    app.clock.advance(Duration::from_secs(30 * 86400 - 1));
    assert_eq!(
        app.call(Method::GET, "/v1/me", Some(&token), None, None)
            .await
            .status(),
        200
    );
    app.clock.advance(Duration::from_secs(1));
    problem(
        app.call(Method::GET, "/v1/me", Some(&token), None, None)
            .await,
        401,
    )
    .await;
    for bad in ["", "Bearer", "Basic abc", "Bearer yz_nope"] {
        let r = app
            .client
            .get(app.url("/v1/me"))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn the_profile_is_private() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let token = app.token_for(PHONE, Role::Worker, &[]).await;
    let profile = json!({"display_name": "李师傅", "gender": "male", "birth_year": 1988,
        "marital_status": "single", "union_member_no": "GH-370102-0001", "employer": "某某外卖", "frontline": true});
    let r = app
        .call(
            Method::PUT,
            "/v1/me/profile",
            Some(&token),
            Some(profile.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let me: Value = app
        .call(Method::GET, "/v1/me", Some(&token), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["profile"], profile);
    for (field, bad) in [
        ("gender", json!("other")),
        ("birth_year", json!(1800)),
        ("marital_status", json!("complicated")),
        ("frontline", json!("yes")),
        ("display_name", json!("")),
        ("nickname", json!("x")),
    ] {
        let mut b = profile.clone();
        b[field] = bad;
        let p = problem(
            app.call(Method::PUT, "/v1/me/profile", Some(&token), Some(b), None)
                .await,
            422,
        )
        .await;
        assert_eq!(p["param"], field);
    }
    // Public responses carry none of it.
    let id = app.get_json("/v1/sites/nearby?lat=36.65&lon=117.12").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::PUT,
        &format!("/v1/sites/{id}/follow"),
        Some(&token),
        None,
        None,
    )
    .await;
    for path in [
        format!("/v1/sites/{id}"),
        "/v1/sites/nearby?lat=36.65&lon=117.12".to_owned(),
    ] {
        let text = app.get(&path).await.text().await.unwrap();
        for secret in ["李师傅", "GH-370102-0001", PHONE, "某某外卖"] {
            assert!(!text.contains(secret), "{path} shows {secret}");
        }
    }
}

/// Sites A, B and C; tokens for anonymous, a worker, A's manager, B's manager, an admin.
struct World {
    app: TestApp,
    a: String,
    c: String,
    tokens: Vec<(&'static str, Option<String>)>,
}

async fn world() -> World {
    let app = spawn_app(vec![
        draft(1, Kind::OutdoorStation, 36.65, 117.12),
        draft(2, Kind::MotherRoom, 36.66, 117.13),
        draft(3, Kind::UnionStation, 36.67, 117.14),
    ])
    .await;
    let body = app
        .get_json("/v1/sites/nearby?lat=36.65&lon=117.12&k=3")
        .await;
    let id_of = |r: &str| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == r)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b, c) = (id_of("test-1"), id_of("test-2"), id_of("test-3"));
    let worker = app.token_for("13800000001", Role::Worker, &[]).await;
    let manager_a = app
        .token_for("13800000002", Role::SiteManager, &[a.parse().unwrap()])
        .await;
    let manager_b = app
        .token_for("13800000003", Role::SiteManager, &[b.parse().unwrap()])
        .await;
    let admin = app.token_for("13800000004", Role::Admin, &[]).await;
    World {
        app,
        a,
        c,
        tokens: vec![
            ("anonymous", None),
            ("worker", Some(worker)),
            ("manager of A", Some(manager_a)),
            ("manager of B", Some(manager_b)),
            ("admin", Some(admin)),
        ],
    }
}

/// (method, path, body, needs If-Match, expected status per role in World order)
type Case = (Method, String, Option<Value>, bool, [u16; 5]);

#[tokio::test]
async fn authorization_matrix() {
    let w = world().await;
    let (a, c) = (w.a.clone(), w.c.clone());
    let new_site = json!({"kind": "union_station", "name": "新驿站", "address": "济南市历下区某路1号",
        "adcode": "370102", "lat": 36.7, "lon": 117.1, "opening_hours": "24/7"});
    // (method, path, body, needs If-Match, expected per role in World order)
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/v1/me".into(),
            None,
            false,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::PUT,
            "/v1/me/profile".into(),
            Some(json!({"display_name": "x"})),
            false,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/me/follows".into(),
            None,
            false,
            [401, 200, 200, 200, 200],
        ),
        (
            Method::PUT,
            format!("/v1/sites/{a}/follow"),
            None,
            false,
            [401, 204, 204, 204, 204],
        ),
        (
            Method::DELETE,
            format!("/v1/sites/{a}/follow"),
            None,
            false,
            [401, 204, 204, 204, 204],
        ),
        (
            Method::POST,
            "/v1/sites".into(),
            Some(new_site),
            false,
            [401, 403, 403, 403, 201],
        ),
        (
            Method::PATCH,
            format!("/v1/sites/{a}"),
            Some(json!({"phone": "0531-1234567"})),
            true,
            [401, 403, 200, 403, 200],
        ),
        (
            Method::PATCH,
            format!("/v1/sites/{a}"),
            Some(json!({"name": "改名"})),
            true,
            [401, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            format!("/v1/sites/{a}/history"),
            None,
            false,
            [401, 403, 200, 403, 200],
        ),
        (
            Method::DELETE,
            format!("/v1/sites/{c}"),
            None,
            false,
            [401, 403, 403, 403, 204],
        ),
        (
            Method::GET,
            "/v1/users/1".into(),
            None,
            false,
            [401, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/v1/auth/logout".into(),
            None,
            false,
            [401, 204, 204, 204, 204],
        ),
    ];
    let mut checked = 0;
    for (method, path, body, if_match, expected) in cases {
        for ((role, token), want) in w.tokens.iter().zip(expected) {
            let tag = if if_match {
                Some(w.app.etag(&a).await)
            } else {
                None
            };
            let mut body = body.clone();
            if method == Method::POST && path == "/v1/sites" {
                body.as_mut().unwrap()["ref"] = json!(format!("new-{role}"));
            }
            let r = w
                .app
                .call(
                    method.clone(),
                    &path,
                    token.as_deref(),
                    body,
                    tag.as_deref(),
                )
                .await;
            let status = r.status().as_u16();
            assert_eq!(
                status,
                want,
                "{role} {method} {path}: {}",
                r.text().await.unwrap()
            );
            if status >= 400 {
                // Refusals are problems.
                assert_eq!(r.headers()["content-type"], "application/problem+json");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 60);
}

#[tokio::test]
async fn edits_need_a_current_if_match() {
    let w = world().await;
    let (app, a) = (&w.app, &w.a);
    let manager = w.tokens[2].1.clone().unwrap();
    let other = w.tokens[4].1.clone().unwrap();
    let body = json!({"phone": "0531-7654321"});
    let p = problem(
        app.call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&manager),
            Some(body.clone()),
            None,
        )
        .await,
        428,
    )
    .await;
    assert_eq!(p["param"], "If-Match");
    // Two editors read the same version; the second write is refused, not lost silently.
    let tag = app.etag(a).await;
    let gcj_tag = app.get(&format!("/v1/sites/{a}?crs=gcj02")).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&manager),
            Some(body.clone()),
            Some(&tag),
        )
        .await;
    assert_eq!(r.status(), 200);
    let new_tag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_tag, tag);
    let p = problem(
        app.call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&other),
            Some(json!({"phone": null})),
            Some(&gcj_tag),
        )
        .await,
        412,
    )
    .await;
    assert_eq!(p["param"], "If-Match");
    problem(
        app.call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&other),
            Some(json!({})),
            Some("\"garbage\""),
        )
        .await,
        412,
    )
    .await;
    // With the new tag it goes through.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&other),
            Some(json!({"phone": null})),
            Some(&new_tag),
        )
        .await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["phone"], Value::Null);
    assert_eq!(doc["version"], 3);
    // `If-Match: *` names whichever version is current (RFC 9110 13.1.1).
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&other),
            Some(json!({"phone": "0531-1234567"})),
            Some("*"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["version"], 4);
    // A ref already another site's is 409, and the site stays as it was.
    let admin = other;
    let created = app
        .call(
            Method::POST,
            "/v1/sites",
            Some(&admin),
            Some(json!({"kind": "union_station", "name": "另一站", "address": "济南市", "adcode": "370102",
                        "lat": 36.67, "lon": 117.13, "opening_hours": "24/7", "ref": "taken-1"})),
            None,
        )
        .await;
    assert_eq!(created.status(), 201);
    let p = problem(
        app.call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&admin),
            Some(json!({"ref": "taken-1"})),
            Some("*"),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().starts_with("ref:"), "{p}");
    assert_eq!(app.get_json(&format!("/v1/sites/{a}")).await["version"], 4);
}

#[tokio::test]
async fn invalid_fields_are_named_and_bad_hours_say_where() {
    let w = world().await;
    let (app, a) = (&w.app, &w.a);
    let manager = w.tokens[2].1.clone().unwrap();
    let tag = app.etag(a).await;
    let p = problem(
        app.call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&manager),
            Some(json!({"opening_hours": "Mo-Fr 08:00-25:99"})),
            Some(&tag),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "opening_hours");
    assert!(p["position"].is_u64(), "{p}");
    assert!(p["detail"].as_str().unwrap().len() > "opening_hours: ".len());
    for (field, bad) in [
        ("status", json!("retired")),
        ("status", json!("gone")),
        ("amenities", json!(["sauna"])),
        (
            "closures",
            json!([{"from": "2026-12-24T18:00:00+08:00", "to": "2026-12-24T14:00:00+08:00"}]),
        ),
        ("reopens_at", json!("soon")),
        ("photos", json!(["ftp://x"])),
        ("colour", json!("red")),
    ] {
        let p = problem(
            app.call(
                Method::PATCH,
                &format!("/v1/sites/{a}"),
                Some(&manager),
                Some(json!({field: bad})),
                Some(&tag),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(p["param"], field, "{p}");
    }
    // A manager sending an admin-only field is told which.
    let p = problem(
        app.call(
            Method::PATCH,
            &format!("/v1/sites/{a}"),
            Some(&manager),
            Some(json!({"lat": 30.0, "lon": 120.0})),
            Some(&tag),
        )
        .await,
        403,
    )
    .await;
    assert!(p["param"] == "lat" || p["param"] == "lon", "{p}");
    // Nothing above changed the site.
    assert_eq!(app.etag(a).await, tag);
}

#[tokio::test]
async fn a_managers_change_shows_in_the_very_next_nearby_query() {
    let w = world().await;
    let (app, a) = (&w.app, w.a.clone());
    let manager = w.tokens[2].1.clone().unwrap();
    // Tuesday 2026-11-24 10:00 in Shanghai.
    let at = "2026-11-24T10:00:00%2B08:00";
    let nearby = format!("/v1/sites/nearby?lat=36.65&lon=117.12&k=3&at={at}");
    let is_open = |body: &Value| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == a.as_str())
            .map(|i| i["is_open"].as_bool().unwrap())
    };
    assert_eq!(is_open(&app.get_json(&nearby).await), Some(true));

    let patch = |body: Value| {
        let app = &w.app;
        let a = a.clone();
        let manager = manager.clone();
        async move {
            let tag = app.etag(&a).await;
            let r = app
                .call(
                    Method::PATCH,
                    &format!("/v1/sites/{a}"),
                    Some(&manager),
                    Some(body),
                    Some(&tag),
                )
                .await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    patch(json!({"opening_hours": "Mo-Fr 14:00-18:00"})).await;
    assert_eq!(is_open(&app.get_json(&nearby).await), Some(false));
    let open_only = app.get_json(&format!("{nearby}&open=true")).await;
    assert_eq!(is_open(&open_only), None);

    patch(json!({"opening_hours": "Mo-Fr 08:00-18:00"})).await;
    let body = app.get_json(&nearby).await;
    assert_eq!(is_open(&body), Some(true));

    // A closure for cleaning from 09:30 to 11:00 that day.
    patch(json!({"closures": [{"from": "2026-11-24T09:30:00+08:00", "to": "2026-11-24T11:00:00+08:00", "reason": "清洁"}]})).await;
    let body = app.get_json(&nearby).await;
    let item = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == a.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["is_open"], false);
    assert_eq!(item["next_change"], "2026-11-24T03:00:00.000Z");

    patch(json!({"closures": [], "status": "temporarily_closed", "status_reason": "水管维修", "reopens_at": "2026-11-30"})).await;
    assert_eq!(is_open(&app.get_json(&nearby).await), Some(false));
    let doc = app.get_json(&format!("/v1/sites/{a}")).await;
    assert_eq!(doc["status_reason"], "水管维修");
    assert_eq!(doc["reopens_at"], "2026-11-29T16:00:00.000Z");

    patch(json!({"status": "open"})).await;
    assert_eq!(is_open(&app.get_json(&nearby).await), Some(true));
    let doc = app.get_json(&format!("/v1/sites/{a}")).await;
    assert_eq!(doc["status_reason"], Value::Null);

    // Each change is in the feed and the audit log, with who made it.
    let feed = app.get_json("/v1/sites/changes?since=0&limit=1000").await;
    let versions: Vec<i64> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["site"]["id"] == a.as_str())
        .map(|i| i["site"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.len(), 6);
    let history: Value = app
        .call(
            Method::GET,
            &format!("/v1/sites/{a}/history"),
            Some(&manager),
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(items[0]["action"], "create");
    assert_eq!(items[0]["user_id"], Value::Null);
    assert_eq!(
        items[1]["changes"]["opening_hours"],
        json!({"old": "24/7", "new": "Mo-Fr 14:00-18:00"})
    );
    assert!(items[1]["user_id"].is_i64());
    assert_eq!(
        items[4]["changes"]["status"],
        json!({"old": "open", "new": "temporarily_closed"})
    );
}

#[tokio::test]
async fn admins_create_and_retire_sites() {
    let w = world().await;
    let app = &w.app;
    let admin = w.tokens[4].1.clone().unwrap();
    let body = json!({"ref": "adm-1", "kind": "mother_room", "name": "爱心妈妈小屋（测试）", "address": "济南市市中区某路2号",
        "adcode": "370103", "lat": 36.651, "lon": 117.121, "opening_hours": "Mo-Fr 09:00-17:00", "amenities": ["nursing_chair"]});
    let r = app
        .call(
            Method::POST,
            "/v1/sites?crs=gcj02",
            Some(&admin),
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let doc: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/sites/{}", doc["id"].as_str().unwrap())
    );
    assert!(
        (doc["lat"].as_f64().unwrap() - 36.651).abs() < 1e-6,
        "returned in the asked crs: {doc}"
    );
    // In the index at once, and a duplicate ref is a conflict.
    let near = app
        .get_json("/v1/sites/nearby?lat=36.651&lon=117.121&crs=gcj02&k=1")
        .await;
    assert_eq!(near["items"][0]["ref"], "adm-1");
    problem(
        app.call(
            Method::POST,
            "/v1/sites",
            Some(&admin),
            Some(body.clone()),
            None,
        )
        .await,
        409,
    )
    .await;
    let mut missing = body.clone();
    missing.as_object_mut().unwrap().remove("name");
    missing["ref"] = json!("adm-2");
    let p = problem(
        app.call(Method::POST, "/v1/sites", Some(&admin), Some(missing), None)
            .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "name");

    let id = doc["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/v1/sites/{id}"),
            Some(&admin),
            None,
            None
        )
        .await
        .status(),
        204
    );
    let near = app
        .get_json("/v1/sites/nearby?lat=36.651&lon=117.121&crs=gcj02&k=1")
        .await;
    assert_ne!(near["items"][0]["ref"], "adm-1");
    assert_eq!(
        app.get_json(&format!("/v1/sites/{id}")).await["status"],
        "retired"
    );
}

/// A random JSON value, biased towards the shapes the endpoints expect.
fn random_json(rng: &mut rand_chacha::ChaCha8Rng, depth: u32) -> Value {
    use rand::Rng;
    let strings = [
        "",
        " ",
        "13812345678",
        "+86 138 1234 5678",
        "123456",
        "24/7",
        "Mo-Fr 08:00-18:00",
        "Mo-Fr 25:00-26:00",
        "open",
        "temporarily_closed",
        "retired",
        "male",
        "female",
        "single",
        "union_station",
        "370102",
        "2026-12-24",
        "2026-12-24T14:00:00+08:00",
        "not a time",
        "https://x.cn/p.jpg",
        "\u{0}",
        "中文",
        "sauna",
        "microwave",
        "a very long string indeed that keeps going and going and going and going and going",
    ];
    let keys = [
        "phone",
        "code",
        "display_name",
        "gender",
        "birth_year",
        "marital_status",
        "union_member_no",
        "employer",
        "frontline",
        "opening_hours",
        "status",
        "status_reason",
        "reopens_at",
        "closures",
        "amenities",
        "photos",
        "name",
        "kind",
        "address",
        "adcode",
        "lat",
        "lon",
        "ref",
        "from",
        "to",
        "reason",
        "x",
    ];
    match rng.random_range(0..if depth > 2 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random_range(-1e6..1e6f64)),
        3 => json!(rng.random_range(-5i64..3000)),
        4 | 5 => json!(strings[rng.random_range(0..strings.len())]),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(0..5) {
                m.insert(
                    keys[rng.random_range(0..keys.len())].to_owned(),
                    random_json(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
    }
}

#[tokio::test]
async fn random_bodies_never_fail_the_server() {
    use rand::{Rng, SeedableRng};
    let w = world().await;
    let (app, a) = (&w.app, w.a.clone());
    let mut admin = w.tokens[4].1.clone().unwrap();
    let mut manager = w.tokens[2].1.clone().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..600 {
        if i % 200 == 199 {
            // Fresh tokens now and then.
            admin = app.token_for("13800000004", Role::Admin, &[]).await;
            manager = app
                .token_for("13800000002", Role::SiteManager, &[a.parse().unwrap()])
                .await;
        }
        let body = random_json(&mut rng, 0);
        let (method, path, token) = match i % 5 {
            0 => (Method::POST, "/v1/auth/otp".to_owned(), None),
            1 => (Method::POST, "/v1/auth/token".to_owned(), None),
            2 => (
                Method::PUT,
                "/v1/me/profile".to_owned(),
                Some(manager.as_str()),
            ),
            3 => (
                Method::PATCH,
                format!("/v1/sites/{a}"),
                Some(if rng.random() {
                    admin.as_str()
                } else {
                    manager.as_str()
                }),
            ),
            _ => (Method::POST, "/v1/sites".to_owned(), Some(admin.as_str())),
        };
        let tag = if method == Method::PATCH {
            Some(app.etag(&a).await)
        } else {
            None
        };
        let r = app
            .call(
                method.clone(),
                &path,
                token,
                Some(body.clone()),
                tag.as_deref(),
            )
            .await;
        let status = r.status().as_u16();
        assert!(
            status < 500,
            "{method} {path} {body}: {status} {}",
            r.text().await.unwrap()
        );
        if status >= 400 {
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "{method} {path} {body}"
            );
        }
        *seen.entry(status).or_insert(0) += 1;
        // Keep the code limits (1 a minute per phone, 10 a minute per address) from answering everything.
        app.clock.advance(Duration::from_secs(13));
    }
    // The bodies reached the validators, not only the JSON parser.
    assert!(seen.get(&422).copied().unwrap_or(0) > 100, "{seen:?}");
}

/// `GET /` points a newcomer at the console, the API reference and the
/// operators' endpoints, and the reference it names is served.
#[tokio::test]
async fn the_root_points_to_the_console_the_reference_and_the_probes() {
    let app = spawn_app(vec![]).await;
    let r = app.get("/").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["console"], "/console/");
    assert_eq!(body["ops"]["healthz"], "/healthz");
    let r = app.get(body["openapi"]["yaml"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/yaml");
    let yaml = r.text().await.unwrap();
    // The checked-in document, with problem types under this server's base.
    let checked_in = yizhan::http::openapi_yaml();
    let base = format!("http://{}/problems/", app.addr);
    assert!(checked_in.contains("http://127.0.0.1:8080/problems/not-found"));
    assert_eq!(
        yaml,
        checked_in.replace("http://127.0.0.1:8080/problems/", &base)
    );
    assert!(yaml.contains(&format!("{base}not-found")), "{base}");
    // The same document as JSON.
    let r = app.get(body["openapi"]["json"].as_str().unwrap()).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let json: Value = r.json().await.unwrap();
    let from_yaml: Value = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(json, from_yaml);
    // The readable reference: a page that loads the vendored renderer from
    // here, and the renderer itself (rendering is checked in Chromium by
    // tests/console/e2e.py).
    let r = app.get(body["api_reference"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"spec-url="/openapi.json""#), "{page}");
    let r = app.get("/api/redoc.standalone.js").await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().len() > 500_000);
    for path in ["/console/", "/healthz", "/readyz", "/metrics"] {
        let got = app.get(path).await.status();
        assert!(got.is_success() || got.is_redirection(), "{path}: {got}");
    }
}
