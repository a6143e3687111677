//! China's holiday calendar as data: a new year imported into a running server
//! (through the CLI into the same database, and through the admin API) changes
//! opening states and map ETags without a restart; a bad calendar changes
//! nothing; and the warning that next year is missing follows the clock.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::hours::SHANGHAI;
use yizhan::domain::site::{Kind, SiteDraft, SiteId};
use yizhan::domain::user::Role;
use yizhan::service::Service;

use crate::helpers::{TestApp, draft, spawn_app};

/// Monday 2027-02-08 10:00 in Shanghai: a Spring Festival holiday in the 2027 calendar below.
const HOLIDAY: &str = "2027-02-08T02:00:00Z";
/// Saturday 2027-02-20 10:00 in Shanghai: a make-up workday in the 2027 calendar below.
const MAKEUP_SATURDAY: &str = "2027-02-20T02:00:00Z";

const EVERY_DAY: &str = "Mo-Su 08:00-20:00; PH off";
const WEEKDAYS: &str = "Mo-Fr 09:00-17:00; PH off";

fn site(n: usize, hours: &str, lat: f64, lon: f64) -> SiteDraft {
    let mut d = draft(n, Kind::OutdoorStation, lat, lon);
    d.opening_hours = hours.into();
    d
}

/// `test-1` open every day but holidays, `test-2` on weekdays but holidays.
async fn two_sites() -> TestApp {
    spawn_app(vec![
        site(1, EVERY_DAY, 36.65, 117.12),
        site(2, WEEKDAYS, 36.70, 117.20),
    ])
    .await
}

fn days(list: &[(&str, &str)]) -> Value {
    list.iter()
        .map(|(date, name)| json!({"date": date, "name": name}))
        .collect()
}

/// A plausible 2027 arrangement (the State Council's is not out yet).
fn year_2027() -> Value {
    let mut holidays = vec![
        ("2027-01-01", "New Year's Day"),
        ("2027-01-02", "New Year's Day"),
        ("2027-01-03", "New Year's Day"),
    ];
    let spring = [
        "2027-02-06",
        "2027-02-07",
        "2027-02-08",
        "2027-02-09",
        "2027-02-10",
        "2027-02-11",
        "2027-02-12",
        "2027-02-13",
        "2027-02-14",
    ];
    holidays.extend(spring.iter().map(|d| (*d, "Spring Festival")));
    holidays.extend([
        ("2027-04-03", "Tomb-sweeping Day"),
        ("2027-04-04", "Tomb-sweeping Day"),
        ("2027-04-05", "Tomb-sweeping Day"),
        ("2027-05-01", "Labour Day"),
        ("2027-05-02", "Labour Day"),
        ("2027-05-03", "Labour Day"),
        ("2027-05-04", "Labour Day"),
        ("2027-05-05", "Labour Day"),
        ("2027-06-09", "Dragon Boat Festival"),
        ("2027-09-15", "Mid-autumn Festival"),
        ("2027-10-01", "National Day"),
        ("2027-10-02", "National Day"),
        ("2027-10-03", "National Day"),
        ("2027-10-04", "National Day"),
        ("2027-10-05", "National Day"),
        ("2027-10-06", "National Day"),
        ("2027-10-07", "National Day"),
    ]);
    json!({
        "holidays": days(&holidays),
        "makeup_workdays": days(&[
            ("2027-02-20", "Spring Festival"),
            ("2027-04-25", "Labour Day"),
            ("2027-05-08", "Labour Day"),
            ("2027-09-26", "National Day"),
            ("2027-10-09", "National Day"),
        ]),
    })
}

/// A calendar file in the `geodata/cn-holidays-*.json` format.
fn calendar_file(years: &[(i32, Value)]) -> String {
    let years: serde_json::Map<String, Value> = years
        .iter()
        .map(|(y, v)| (y.to_string(), v.clone()))
        .collect();
    json!({"source": "test: a plausible arrangement", "timezone": "Asia/Shanghai", "years": years})
        .to_string()
}

/// `(is_open, next_change)` of every site by ref, at `at`.
async fn states(app: &TestApp, at: &str) -> HashMap<String, (bool, Value)> {
    let body = app
        .get_json(&format!(
            "/v1/sites/nearby?lat=36.65&lon=117.12&k=10&at={at}"
        ))
        .await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["ref"].as_str().unwrap().to_owned(),
                (i["is_open"].as_bool().unwrap(), i["next_change"].clone()),
            )
        })
        .collect()
}

/// Before 2027 is known: 2027-02-08 is an ordinary Monday, 2027-02-20 an ordinary Saturday.
async fn assert_2027_unknown(app: &TestApp) {
    let holiday = states(app, HOLIDAY).await;
    assert_eq!(holiday["test-1"], (true, json!("2027-02-08T12:00:00.000Z")));
    let makeup = states(app, MAKEUP_SATURDAY).await;
    assert_eq!(makeup["test-2"], (false, json!("2027-02-22T01:00:00.000Z")));
    assert_eq!(app.get("/v1/holidays?year=2027").await.status(), 404);
}

/// With 2027 known: closed on the holiday until the festival is over, open on the make-up
/// Saturday as on a Friday.
async fn assert_2027_known(app: &TestApp) {
    let holiday = states(app, HOLIDAY).await;
    assert_eq!(
        holiday["test-1"],
        (false, json!("2027-02-15T00:00:00.000Z"))
    );
    let makeup = states(app, MAKEUP_SATURDAY).await;
    assert_eq!(makeup["test-2"], (true, json!("2027-02-20T09:00:00.000Z")));
    let year = app.get_json("/v1/holidays?year=2027").await;
    assert_eq!(year["year"], 2027);
    assert_eq!(
        year["holidays"][5],
        json!({"date": "2027-02-08", "name": "Spring Festival"})
    );
    assert_eq!(
        year["makeup_workdays"][0],
        json!({"date": "2027-02-20", "name": "Spring Festival"})
    );
}

fn yizhan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yizhan"));
    c.env_remove("YIZHAN_DATABASE_URL");
    c
}

/// Run `yizhan ARGS` off the runtime's thread: the server under test shares
/// this runtime and must go on (a write it has begun must be able to commit).
async fn run(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || yizhan().args(&args).output())
        .await
        .expect("joined")
        .expect("yizhan runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The ETag of a GET, and whether `If-None-Match: previous` still matches.
async fn etag(app: &TestApp, path: &str, previous: Option<&str>) -> (String, bool) {
    let mut r = app.client.get(app.url(path));
    if let Some(tag) = previous {
        r = r.header("if-none-match", tag);
    }
    let r = r.send().await.unwrap();
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    (tag, r.status() == 304)
}

/// `PUT /v1/admin/holidays/{year}`.
async fn put(app: &TestApp, year: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let path = format!("/v1/admin/holidays/{year}");
    app.call(Method::PUT, &path, token, Some(body), None).await
}

/// The slippy-map tile holding a point.
fn tile_of(z: u32, lat: f64, lon: f64) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let lat = lat.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x as u32, y as u32)
}

#[tokio::test]
async fn a_calendar_imported_with_the_cli_reaches_the_running_server_without_a_restart() {
    let app = two_sites().await;
    assert_2027_unknown(&app).await;
    let viewport = format!("/v1/sites?bbox=117,36,118,37&at={HOLIDAY}");
    let (before, _) = etag(&app, &viewport, None).await;
    let dir = tempfile::tempdir().unwrap();
    let db = app.database_url.as_str();

    // A bad file (its 2028 has a make-up workday on a Monday): nothing of it is imported.
    let bad = dir.path().join("bad.json");
    let mut year_2028 = json!({
        "holidays": days(&[("2028-01-01", "New Year's Day")]),
        "makeup_workdays": days(&[("2028-02-19", "Spring Festival"), ("2028-02-21", "Spring Festival")]),
    });
    std::fs::write(
        &bad,
        calendar_file(&[(2027, year_2027()), (2028, year_2028.clone())]),
    )
    .unwrap();
    let (ok, _, err) = run(&[
        "admin",
        "holidays",
        "import",
        bad.to_str().unwrap(),
        "--database-url",
        db,
    ])
    .await;
    assert!(!ok);
    assert!(
        err.contains("year 2028")
            && err.contains("2028-02-21 is a Monday")
            && err.contains("makeup_workdays[1].date")
            && err.contains("nothing was imported"),
        "{err}"
    );
    app.service.catch_up().await.unwrap();
    assert_2027_unknown(&app).await;
    assert!(etag(&app, &viewport, Some(&before)).await.1);

    // The good file, into the server's database by another process.
    year_2028["makeup_workdays"] = days(&[("2028-02-19", "Spring Festival")]);
    let good = dir.path().join("cn-holidays-2027-2028.json");
    std::fs::write(
        &good,
        calendar_file(&[(2027, year_2027()), (2028, year_2028)]),
    )
    .unwrap();
    let good = good.to_str().unwrap();
    let import = async || run(&["admin", "holidays", "import", good, "--database-url", db]).await;
    let (ok, out, err) = import().await;
    assert!(ok, "{err}");
    assert!(out.contains("2027 added, 2028 added"), "{out}");
    // The follower's next tick (tests run it by hand) installs it.
    app.service.catch_up().await.unwrap();
    assert_2027_known(&app).await;
    let (after, still) = etag(&app, &viewport, Some(&before)).await;
    assert!(!still && after != before, "the viewport's ETag changes");

    // The same file again changes nothing.
    let (ok, out, _) = import().await;
    assert!(
        ok && out.contains("2027 unchanged, 2028 unchanged"),
        "{out}"
    );
    app.service.catch_up().await.unwrap();
    assert!(etag(&app, &viewport, Some(&after)).await.1);

    let (ok, out, err) = run(&["admin", "holidays", "list", "--database-url", db]).await;
    assert!(ok, "{err}");
    let listed: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["2024", "2025", "2026", "2027", "2028"], "{out}");
    assert!(out.contains("test: a plausible arrangement"), "{out}");
}

#[tokio::test]
async fn a_calendar_put_through_the_api_applies_at_once_on_this_node_and_soon_on_others() {
    let app = two_sites().await;
    // Another node on the same database.
    let other = Service::with_store(
        yizhan::store::connect(&app.database_url).await.unwrap(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let worker = app.token_for("13900000000", Role::Worker, &[]).await;

    assert_2027_unknown(&app).await;
    let a = states(&app, HOLIDAY).await;
    assert!(a["test-1"].0);
    let viewport = format!("/v1/sites?bbox=117,36,118,37&at={HOLIDAY}");
    let clusters = format!("/v1/sites/clusters?bbox=117,36,118,37&zoom=20&at={HOLIDAY}");
    let (x, y) = tile_of(14, 36.65, 117.12);
    let tile = format!("/v1/tiles/14/{x}/{y}.mvt?at={HOLIDAY}");
    let mut tags = Vec::new();
    for p in [&viewport, &clusters, &tile] {
        tags.push(etag(&app, p, None).await.0);
    }

    assert_eq!(put(&app, "2027", None, year_2027()).await.status(), 401);
    assert_eq!(
        put(&app, "2027", Some(&worker), year_2027()).await.status(),
        403
    );

    // A make-up workday on a Monday: 422 naming it, and nothing changes.
    let mut bad = year_2027();
    bad["makeup_workdays"][1] = json!({"date": "2027-02-22", "name": "Spring Festival"});
    let r = put(&app, "2027", Some(&admin), bad).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["param"], "makeup_workdays[1].date");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("2027-02-22 is a Monday"),
        "{problem}"
    );
    assert_2027_unknown(&app).await;

    let r = put(&app, "2027", Some(&admin), year_2027()).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["year"], 2027);
    assert_eq!(doc["holidays"].as_array().unwrap().len(), 29);
    // This node: when the response has left. No follow tick needed.
    assert_2027_known(&app).await;
    assert_eq!(app.get_json("/v1/holidays?year=2027").await, doc);
    for (p, before) in [&viewport, &clusters, &tile].into_iter().zip(&tags) {
        let (after, still) = etag(&app, p, Some(before)).await;
        assert!(!still && &after != before, "{p}: the ETag changes");
    }

    // The other node: on its follower's next tick.
    let id: SiteId = app
        .get_json("/v1/sites/nearby?lat=36.65&lon=117.12&k=1")
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let at: DateTime<Utc> = HOLIDAY.parse().unwrap();
    let open_there = |s: &Service| s.state.index.snapshot().get(id).unwrap().state(at).is_open;
    assert!(open_there(&other));
    other.catch_up().await.unwrap();
    assert!(!open_there(&other));
    assert!(other.state.index.calendar().year(2027).is_some());

    // Replacing the year replaces it whole: 2027-02-08 is an ordinary day again, and the
    // opening state cached from the first calendar is not served.
    let mut moved = year_2027();
    moved["holidays"] = days(&[("2027-01-01", "New Year's Day")]);
    moved["makeup_workdays"] = json!([]);
    assert_eq!(put(&app, "2027", Some(&admin), moved).await.status(), 200);
    assert_2027_unknown_days(&app).await;
    assert_eq!(
        app.get_json("/v1/holidays?year=2027").await["holidays"],
        days(&[("2027-01-01", "New Year's Day")])
    );
}

/// 2027 is known, but 2027-02-08 and 2027-02-20 are ordinary days in it.
async fn assert_2027_unknown_days(app: &TestApp) {
    assert_eq!(
        states(app, HOLIDAY).await["test-1"],
        (true, json!("2027-02-08T12:00:00.000Z"))
    );
    assert_eq!(
        states(app, MAKEUP_SATURDAY).await["test-2"],
        (false, json!("2027-02-22T01:00:00.000Z"))
    );
}

#[tokio::test]
async fn the_public_calendar_and_bad_requests_name_their_field() {
    let app = two_sites().await;
    let y2025 = app.get_json("/v1/holidays?year=2025").await;
    assert_eq!(y2025["holidays"].as_array().unwrap().len(), 28);
    assert_eq!(
        y2025["holidays"][0],
        json!({"date": "2025-01-01", "name": "New Year's Day"})
    );
    assert_eq!(
        y2025["makeup_workdays"][3],
        json!({"date": "2025-09-28", "name": "National Day"})
    );
    let r = app.get("/v1/holidays?year=2025").await;
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag(&app, "/v1/holidays?year=2025", Some(&tag)).await.1);

    for (query, status) in [
        ("", 400),
        ("?year=abc", 400),
        ("?year=1999", 400),
        ("?year=2030", 404),
    ] {
        let r = app.get(&format!("/v1/holidays{query}")).await;
        assert_eq!(r.status(), status, "{query}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        if status == 400 {
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["param"], "year", "{query}");
        }
    }

    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let good = year_2027();
    let mut cases: Vec<(&str, Value, u16, &str)> = vec![
        ("20x7", good.clone(), 400, "year"),
        ("3000", good.clone(), 400, "year"),
        (
            "2027",
            json!({"holidays": [], "makeup_workdays": []}),
            422,
            "holidays",
        ),
        ("2027", json!({"makeup_workdays": []}), 422, "holidays"),
        (
            "2027",
            json!({"holidays": good["holidays"]}),
            422,
            "makeup_workdays",
        ),
        (
            "2027",
            json!({"holidays": ["2027-01-01"], "makeup_workdays": []}),
            422,
            "holidays[0]",
        ),
        (
            "2027",
            json!({"holidays": [{"name": "x"}], "makeup_workdays": []}),
            422,
            "holidays[0].date",
        ),
        (
            "2027",
            json!({"holidays": [{"date": "2027-01-01", "name": "x", "when": 1}], "makeup_workdays": []}),
            422,
            "holidays[0]",
        ),
        (
            "2028",
            good.clone(),
            422,
            "holidays[0].date", // 2027-01-01 is not in 2028
        ),
    ];
    let mut extra = good.clone();
    extra["year"] = json!(2027);
    cases.push(("2027", extra, 422, "year"));
    let mut both = good.clone();
    both["makeup_workdays"][0] = json!({"date": "2027-10-02", "name": "National Day"});
    cases.push(("2027", both, 422, "makeup_workdays[0].date"));
    for (year, body, status, param) in cases {
        let r = put(&app, year, Some(&admin), body.clone()).await;
        assert_eq!(r.status(), status, "{year} {body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["param"], param, "{year} {body}: {p}");
    }
    // None of it was stored.
    assert_eq!(app.get("/v1/holidays?year=2027").await.status(), 404);
    assert_eq!(app.get("/v1/holidays?year=2028").await.status(), 404);
}

/// Log lines written while `f` runs on this thread.
fn logs_of<R>(f: impl FnOnce() -> R) -> (R, String) {
    let captured = crate::helpers::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let r = tracing::subscriber::with_default(subscriber, f);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (r, log)
}

fn shanghai(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    SHANGHAI
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// `/healthz`'s calendar part, `/metrics`' two calendar gauges, and what the daily check logs.
async fn observe(app: &TestApp) -> (Value, (i64, i64), String) {
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the warning never fails the check");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let gauge = |name: &str| -> i64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    let gauges = (
        gauge("yizhan_holiday_calendar_last_year"),
        gauge("yizhan_holiday_calendar_warning"),
    );
    let (status, log) = logs_of(|| app.service.check_holiday_calendar());
    assert_eq!(status.warning.is_some(), log.contains("WARN"), "{log}");
    (health["holiday_calendar"].clone(), gauges, log)
}

#[tokio::test]
async fn the_warning_shows_from_1_november_while_next_year_is_missing() {
    let app = two_sites().await;

    // 31 October 2026, 2024–2026 known: all quiet.
    app.clock.set(shanghai(2026, 10, 31, 23));
    let (health, gauges, log) = observe(&app).await;
    assert_eq!(
        health,
        json!({"last_year": 2026, "current_year_known": true, "next_year_known": false, "warning": null})
    );
    assert_eq!(gauges, (2026, 0));
    assert!(!log.contains("holiday calendar"), "{log}");

    // 1 November, 00:00 in Shanghai (still 31 October in UTC): 2027 is due.
    app.clock.set(shanghai(2026, 11, 1, 0));
    let (health, gauges, log) = observe(&app).await;
    let warning = health["warning"].as_str().unwrap();
    assert!(
        warning.contains("no 2027") && warning.contains("yizhan admin holidays import"),
        "{warning}"
    );
    assert_eq!(health["next_year_known"], false);
    assert_eq!(gauges, (2026, 1));
    assert!(log.contains("WARN") && log.contains("no 2027"), "{log}");

    // A day later the check says it again (the daily task calls the same function).
    app.clock.advance(Duration::from_secs(24 * 3600));
    assert!(observe(&app).await.2.contains("no 2027"));

    // 2027 arrives: no warning.
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let r = put(&app, "2027", Some(&admin), year_2027()).await;
    assert_eq!(r.status(), 200);
    let (health, gauges, log) = observe(&app).await;
    assert_eq!(health["warning"], Value::Null);
    assert_eq!(health["next_year_known"], true);
    assert_eq!(gauges, (2027, 0));
    assert!(!log.contains("WARN"), "{log}");

    // A year later, 2028 is missing.
    app.clock.set(shanghai(2027, 11, 1, 9));
    let (health, gauges, log) = observe(&app).await;
    assert!(health["warning"].as_str().unwrap().contains("no 2028"));
    assert_eq!(gauges, (2027, 1));
    assert!(log.contains("no 2028"), "{log}");

    // And in 2029 even the current year is unknown.
    app.clock.set(shanghai(2029, 3, 1, 9));
    let (health, _, _) = observe(&app).await;
    assert_eq!(health["current_year_known"], false);
    assert!(health["warning"].as_str().unwrap().contains("no 2029"));
}
