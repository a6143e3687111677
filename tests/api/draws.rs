//! A fair draw (抽签, issue 26), end to end over HTTP: applying, the draw at
//! `draw_at` made by the worker, the public record recomputed by
//! `scripts/verify-draw` (Python, independent of the Rust code), and places
//! passed down the drawn order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::user::{Gender, Profile, Role};

use crate::helpers::{TestApp, second_node, site_and_admin, spawn_app_with_a_site};

/// A draw event: applications open now and close in a day, the draw an
/// hour later, the event in ten days.
async fn draw_event(app: &TestApp, admin: &str, site: &str, extra: Value) -> Value {
    let now = app.clock_now();
    let mut body = json!({
        "kind": "recuperation", "site_id": site, "title": "一线职工疗休养", "capacity": 40,
        "allocation": "draw",
        "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::days(14)).to_rfc3339(),
        "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "booking_closes_at": (now + chrono::Duration::days(1)).to_rfc3339(),
        "draw_at": (now + chrono::Duration::days(1) + chrono::Duration::hours(1)).to_rfc3339(),
        "cancel_deadline": (now + chrono::Duration::days(9)).to_rfc3339(),
        "offer_hours": 24,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app
        .call(Method::POST, "/v1/events", Some(admin), Some(body), None)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// A worker with this profile and a token.
async fn person(app: &TestApp, phone: &str, profile: Profile) -> (String, i64) {
    let token = app.token_for(phone, Role::Worker, &[]).await;
    let store = &app.service.state.store;
    let user = store
        .user_by_phone(&phone.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    store.set_profile(user.id, &profile).await.unwrap();
    (token, user.id)
}

async fn apply(app: &TestApp, event: &str, token: &str, key: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{event}/applications")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Run `scripts/verify-draw` on a URL or a file: its exit code and output.
fn verify_draw(source: &str) -> (i32, String) {
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify-draw"))
        .arg(source)
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Run the script on a record changed by `change`.
fn verify_changed(record: &Value, change: impl FnOnce(&mut Value)) -> (i32, String) {
    let mut r = record.clone();
    change(&mut r);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("draw.json");
    std::fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();
    verify_draw(path.to_str().unwrap())
}

/// The quota a profile falls in (as the event below reserves seats).
fn quota_of(g: Option<Gender>) -> Option<&'static str> {
    match g {
        Some(Gender::Female) => Some("female"),
        Some(Gender::Male) => Some("male"),
        None => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_apply_for_forty_places_and_anyone_can_check_the_draw() {
    let app = spawn_app_with_a_site().await;
    let (site, admin) = site_and_admin(&app).await;
    // 40 places: 15 for women, 15 for men, 10 for anyone else; front-line
    // workers first, then young workers; over 60 not eligible.
    let event = draw_event(
        &app,
        &admin,
        &site,
        json!({
            "quotas": [{"attribute": "gender", "value": "female", "seats": 15},
                       {"attribute": "gender", "value": "male", "seats": 15}],
            "priority_groups": [{"name": "一线职工", "frontline": true},
                                {"name": "青年职工", "max_age": 35}],
            "eligibility": {"max_age": 60},
            "public_value": "中国福利彩票双色球 2026141 期开奖号码",
        }),
    )
    .await;
    let id = event["id"].as_str().unwrap().to_owned();
    let commitment = event["seed_commitment"].as_str().unwrap().to_owned();
    assert_eq!(event["allocation"], "draw");
    assert_eq!(commitment.len(), 64);
    // Before the draw the record shows the commitment and nothing secret.
    let before = app.get_json(&format!("/v1/events/{id}/draw")).await;
    assert_eq!(before["seed_commitment"], commitment.as_str());
    assert!(
        before["secret"].is_null() && before["seed"].is_null(),
        "{before}"
    );

    // 3,000 people: every 100th front-line, every 5th young, a third each
    // women, men and undeclared.
    const N: usize = 3000;
    let app = std::sync::Arc::new(app);
    let mut people: Vec<(String, i64)> = Vec::with_capacity(N);
    let mut profile_of: Vec<Profile> = Vec::with_capacity(N);
    for i in 0..N {
        let p = Profile {
            frontline: Some(i % 100 == 0),
            birth_year: Some(if i % 5 == 1 { 2000 } else { 1980 }),
            gender: match i % 3 {
                0 => Some(Gender::Female),
                1 => Some(Gender::Male),
                _ => None,
            },
            ..Profile::default()
        };
        people.push(person(&app, &format!("139{i:08}"), p.clone()).await);
        profile_of.push(p);
    }
    // Everyone applies, 32 at a time; the first 50 retry with the same key.
    let mut app_of: Vec<String> = vec![String::new(); N];
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (token, _)) in people.iter().enumerate() {
        if tasks.len() >= 32
            && let Some(done) = tasks.join_next().await
        {
            let (i, status, body): (usize, u16, Value) = done.unwrap();
            assert_eq!(status, 201, "{body}");
            app_of[i] = body["id"].as_str().unwrap().to_owned();
        }
        let (app, id, token) = (app.clone(), id.clone(), token.clone());
        tasks.spawn(async move {
            let (status, body) = apply(&app, &id, &token, &format!("k{i}")).await;
            if i < 50 {
                let (again, replay) = apply(&app, &id, &token, &format!("k{i}")).await;
                assert_eq!((again, &replay), (status, &body), "a retry replays");
            }
            (i, status, body)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, status, body) = done.unwrap();
        assert_eq!(status, 201, "{body}");
        app_of[i] = body["id"].as_str().unwrap().to_owned();
    }
    assert!(app_of.iter().all(|a| a.starts_with('a')));
    // A second application by the same person (a new key) is refused.
    let (status, body) = apply(&app, &id, &people[1].0, "another").await;
    assert_eq!(status, 409, "{body}");
    // Ten withdraw before the window closes.
    let withdrawn: Vec<usize> = (0..10).map(|k| 3 + 10 * k).collect();
    for &i in &withdrawn {
        let r = app
            .call(
                Method::DELETE,
                &format!("/v1/applications/{}", app_of[i]),
                Some(&people[i].0),
                None,
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "withdrawn");
    }
    // Five are no longer eligible by the draw (checked again then).
    let ineligible: Vec<usize> = (0..5).map(|k| 7 + 10 * k).collect();
    for &i in &ineligible {
        let p = Profile {
            birth_year: Some(1940),
            ..profile_of[i].clone()
        };
        app.service
            .state
            .store
            .set_profile(people[i].1, &p)
            .await
            .unwrap();
    }
    // The window and the groups are fixed now that people have applied.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&admin),
            Some(json!({"priority_groups": []})),
            None,
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["param"], "priority_groups");

    // Nothing happens before draw_at; at draw_at the worker makes the draw once.
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 0);
    app.clock.advance(Duration::from_secs(25 * 3600 + 60));
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 1);
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 0);

    let url = app.url(&format!("/v1/events/{id}/draw"));
    let record = app.get_json(&format!("/v1/events/{id}/draw")).await;
    assert_eq!(
        record["seed_commitment"],
        commitment.as_str(),
        "the commitment held"
    );
    let entrants = record["entrants"].as_array().unwrap();
    assert_eq!(entrants.len(), N - withdrawn.len() - ineligible.len());

    // The script, independent of this code, recomputes the record from its URL.
    let (code, out) = verify_draw(&url);
    assert_eq!(code, 0, "{out}");
    // One byte of the secret, one id, or the public value changed: it fails.
    let (code, out) = verify_changed(&record, |r| {
        let s = r["secret"].as_str().unwrap();
        let flipped = if &s[..2] == "00" { "01" } else { "00" };
        r["secret"] = json!(format!("{flipped}{}", &s[2..]));
    });
    assert_eq!(code, 1, "{out}");
    let (code, out) = verify_changed(&record, |r| {
        r["entrants"][17]["id"] = json!("a0000000000zz");
    });
    assert_eq!(code, 1, "{out}");
    let (code, out) = verify_changed(&record, |r| {
        r["public_value"] = json!("中国福利彩票双色球 2026142 期开奖号码");
    });
    assert_eq!(code, 1, "{out}");

    // Every entrant's group is what their profile says.
    let index: HashMap<&str, usize> = app_of
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    let group_of = |i: usize| -> Option<&'static str> {
        let p = &profile_of[i];
        if p.frontline == Some(true) {
            Some("一线职工")
        } else if p.birth_year == Some(2000) {
            Some("青年职工")
        } else {
            None
        }
    };
    let mut ranks = Vec::new();
    for e in entrants {
        let i = index[e["id"].as_str().unwrap()];
        assert!(!withdrawn.contains(&i) && !ineligible.contains(&i));
        assert_eq!(e["group"].as_str(), group_of(i), "entrant {i}");
        ranks.push((e["rank"].as_u64().unwrap(), i));
    }
    ranks.sort_unstable();
    // Exactly the right people are offered: walk the published order and give
    // each a place that fits the capacity and the quotas.
    let limits: BTreeMap<Option<&str>, u32> =
        BTreeMap::from([(Some("female"), 15), (Some("male"), 15), (None, 10)]);
    let mut held: BTreeMap<Option<&str>, u32> = BTreeMap::new();
    let mut expected: HashSet<usize> = HashSet::new();
    for &(_, i) in &ranks {
        let q = quota_of(profile_of[i].gender);
        let n = held.entry(q).or_insert(0);
        if *n < limits[&q] && expected.len() < 40 {
            *n += 1;
            expected.insert(i);
        }
    }
    assert_eq!(expected.len(), 40);
    // Front-line workers all got places (30 of them, 10 in each quota).
    assert!((0..N).step_by(100).all(|i| expected.contains(&i)));
    // What each entrant's application says, through the API.
    let mut offered = HashSet::new();
    let mut waiting = Vec::new();
    for &(rank, i) in &ranks {
        let a = app
            .service
            .state
            .store
            .application(app_of[i].parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let doc = yizhan::http::applications::application_doc(&app.service.state, &a)
            .await
            .unwrap();
        let doc = serde_json::to_value(doc).unwrap();
        assert_eq!(doc["rank"], rank);
        match doc["status"].as_str().unwrap() {
            "offered" => {
                assert!(doc["offer_expires_at"].is_string());
                offered.insert(i);
            }
            "waiting" => waiting.push((rank, doc["waitlist_position"].as_u64().unwrap())),
            other => panic!("entrant {i} is {other}"),
        }
    }
    assert_eq!(offered, expected);
    // Everyone else waits in rank order, positions 1..n without gaps.
    let positions: Vec<u64> = waiting.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (1..=waiting.len() as u64).collect::<Vec<_>>());
    // The event holds exactly its capacity.
    let ev = app.get_json(&format!("/v1/events/{id}")).await;
    assert_eq!(ev["seats_left"], 0);
    assert!(ev["drawn_at"].is_string());
    // Those not eligible at the draw are told so.
    let mine = app
        .call(
            Method::GET,
            "/v1/me/applications",
            Some(&people[ineligible[0]].0),
            None,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(mine["items"][0]["status"], "not_eligible");
    assert_eq!(mine["items"][0]["not_eligible_rule"], "age");
    // Every applicant still in is told the result: 40 offers, the rest where they stand.
    let counts = notice_counts(&app).await;
    assert_eq!(counts.get("seat_offered"), Some(&40), "{counts:?}");
    assert_eq!(
        counts.get("draw_result"),
        Some(&((N - withdrawn.len() - 40) as i64)),
        "{counts:?}"
    );
    // Booking a draw event is refused, naming `allocation`.
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{id}/bookings")))
        .bearer_auth(&people[0].0)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["param"], "allocation");
    // Nothing of the draw changes now.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&admin),
            Some(json!({"public_value": "another"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["param"], "public_value");
}

/// How many notices of each type are in the inbox table.
async fn notice_counts(app: &TestApp) -> BTreeMap<String, i64> {
    use sqlx::Connection;
    let q = "SELECT type, count(*) FROM notifications GROUP BY type";
    let rows: Vec<(String, i64)> = if app.database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_as(q).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_as(q).fetch_all(&mut c).await.unwrap()
    };
    rows.into_iter().collect()
}

async fn status(app: &TestApp, token: &str, application: &str) -> Value {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/applications/{application}"),
            Some(token),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Each application's (status, waitlist position, booking id), in `order`.
async fn statuses(
    app: &TestApp,
    people: &[(String, String)],
    order: &[usize],
) -> Vec<(String, Option<u64>, String)> {
    let mut out = Vec::new();
    for &i in order {
        let a = status(app, &people[i].0, &people[i].1).await;
        out.push((
            a["status"].as_str().unwrap().to_owned(),
            a["waitlist_position"].as_u64(),
            a["booking_id"].as_str().unwrap().to_owned(),
        ))
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_and_lapses_pass_places_down_the_drawn_order() {
    let app = spawn_app_with_a_site().await;
    let (site, admin) = site_and_admin(&app).await;
    let event = draw_event(
        &app,
        &admin,
        &site,
        json!({"capacity": 3, "offer_hours": 2}),
    )
    .await;
    let id = event["id"].as_str().unwrap().to_owned();
    let mut people = Vec::new();
    for i in 0..12 {
        let (token, _) = person(&app, &format!("1380000{i:04}"), Profile::default()).await;
        let (s, body) = apply(&app, &id, &token, "k").await;
        assert_eq!(s, 201, "{body}");
        people.push((token, body["id"].as_str().unwrap().to_owned()));
    }
    app.clock.advance(Duration::from_secs(25 * 3600 + 60));
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 1);
    let record = app.get_json(&format!("/v1/events/{id}/draw")).await;
    // The applications in drawn order.
    let by_app: HashMap<String, usize> = people
        .iter()
        .enumerate()
        .map(|(i, (_, a))| (a.clone(), i))
        .collect();
    let order: Vec<usize> = record["entrants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| by_app[e["id"].as_str().unwrap()])
        .collect();
    let s = statuses(&app, &people, &order).await;
    let words: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(words[..3], ["offered"; 3]);
    assert!(words[3..].iter().all(|w| *w == "waiting"));
    // The first declines (cancels the booking the draw made): the 4th in order is offered.
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", s[0].2),
            Some(&people[order[0]].0),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    // The second accepts.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/bookings/{}/accept", s[1].2),
            Some(&people[order[1]].0),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let s = statuses(&app, &people, &order).await;
    let words: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        words[..5],
        ["cancelled", "confirmed", "offered", "offered", "waiting"]
    );
    // Offers lapse after offer_hours: the 3rd and 4th lapse, the 5th and 6th are offered.
    app.clock.advance(Duration::from_secs(2 * 3600 + 60));
    assert_eq!(app.service.run_jobs().await.unwrap().offers_lapsed, 2);
    let s = statuses(&app, &people, &order).await;
    let words: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        words,
        [
            "cancelled",
            "confirmed",
            "cancelled",
            "cancelled",
            "offered",
            "offered",
            "waiting",
            "waiting",
            "waiting",
            "waiting",
            "waiting",
            "waiting"
        ]
    );
    // The waitlist stays gapless, in the drawn order.
    let positions: Vec<u64> = s.iter().filter_map(|x| x.1).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5, 6]);
    // The draw was never made again.
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 0);
    let again = app.get_json(&format!("/v1/events/{id}/draw")).await;
    assert_eq!(again["seed"], record["seed"]);
}

#[tokio::test]
async fn a_draw_event_is_checked_field_by_field() {
    let app = spawn_app_with_a_site().await;
    let (site, admin) = site_and_admin(&app).await;
    let now = app.clock_now();
    let base = json!({
        "kind": "recuperation", "site_id": site, "title": "疗休养", "capacity": 40,
        "allocation": "draw",
        "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::days(14)).to_rfc3339(),
        "booking_opens_at": now.to_rfc3339(),
        "booking_closes_at": (now + chrono::Duration::days(1)).to_rfc3339(),
        "draw_at": (now + chrono::Duration::days(2)).to_rfc3339(),
    });
    let refused = |change: Value| {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let app = &app;
        let admin = admin.clone();
        async move {
            let r = app
                .call(Method::POST, "/v1/events", Some(&admin), Some(body), None)
                .await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["param"].as_str().unwrap_or("").to_owned())
        }
    };
    let cases = [
        (json!({"draw_at": null}), "draw_at"),
        (
            json!({"draw_at": (now + chrono::Duration::hours(12)).to_rfc3339()}),
            "draw_at",
        ),
        (json!({"allocation": "lottery"}), "allocation"),
        (json!({"allocation": "first_come"}), "draw_at"),
        (
            json!({"priority_groups": [{"name": "一线职工"}]}),
            "priority_groups[0].name",
        ),
        (
            json!({"priority_groups": [{"name": "a", "frontline": true}, {"name": "b", "min_age": 40, "max_age": 30}]}),
            "priority_groups[1].max_age",
        ),
        (
            json!({"priority_groups": [{"name": "a", "shoe_size": 42}]}),
            "priority_groups",
        ),
        (json!({"waitlist": false}), "waitlist"),
        (json!({"public_value": "a\nb"}), "public_value"),
        // A quota nobody can fall in (the server once accepted gender=robot).
        (
            json!({"quotas": [{"attribute": "gender", "value": "female", "seats": 5},
                              {"attribute": "gender", "value": "robot", "seats": 5}]}),
            "quotas[1].value",
        ),
    ];
    for (change, field) in cases {
        assert_eq!(
            refused(change.clone()).await,
            (422, field.to_owned()),
            "{change}"
        );
    }
    // A good one gets 48 offer hours unless it says otherwise; first-come
    // events say so.
    let r = app
        .call(
            Method::POST,
            "/v1/events",
            Some(&admin),
            Some(base.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let ev: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/events/{}", ev["id"].as_str().unwrap())
    );
    assert_eq!(ev["offer_hours"], 48);
    assert!(ev["drawn_at"].is_null());
    let id = ev["id"].as_str().unwrap();
    // Before anyone applies, the window and the groups may change.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&admin),
            Some(json!({"priority_groups": [{"name": "一线职工", "frontline": true}], "public_value": "双色球 2026141"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Nobody can apply to a first-come event.
    let fc = crate::events::make_event(&app, &admin, &site, json!({})).await;
    let (token, _) = person(&app, "13800009999", Profile::default()).await;
    let (s, body) = apply(&app, &fc, &token, "k").await;
    assert_eq!((s, body["param"].as_str()), (422, Some("allocation")));
    // A first-come event has no record.
    let r = app.get(&format!("/v1/events/{fc}/draw")).await;
    assert_eq!(r.status(), 422);
}

/// A draw event with `n` applicants, its draw due: (event id, tokens).
async fn due_draw(app: &TestApp, n: usize, capacity: u32) -> String {
    let (site, admin) = site_and_admin(app).await;
    let event = draw_event(app, &admin, &site, json!({"capacity": capacity})).await;
    let id = event["id"].as_str().unwrap().to_owned();
    for i in 0..n {
        let (token, _) = person(app, &format!("1370000{i:04}"), Profile::default()).await;
        let (s, body) = apply(app, &id, &token, "k").await;
        assert_eq!(s, 201, "{body}");
    }
    app.clock.advance(Duration::from_secs(25 * 3600 + 60));
    id
}

/// (bookings, applications drawn, notices) of the database, and whether
/// the event is marked drawn.
async fn draw_state(app: &TestApp, event: &str) -> (i64, i64, i64, bool) {
    use sqlx::Connection;
    let id = app
        .service
        .state
        .store
        .get_event(event.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let drawn = id.drawn_at().is_some();
    let e = id.id.as_i64();
    let q = [
        "SELECT count(*) FROM bookings WHERE event_id = $1",
        "SELECT count(*) FROM applications WHERE event_id = $1 AND state = 'drawn'",
        "SELECT count(*) FROM notifications",
    ];
    let mut out = [0i64; 3];
    if app.database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        for (i, q) in q.iter().enumerate() {
            out[i] = sqlx::query_scalar(*q)
                .bind(e)
                .fetch_one(&mut c)
                .await
                .unwrap();
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        for (i, q) in q.iter().enumerate() {
            out[i] = sqlx::query_scalar(*q)
                .bind(e)
                .fetch_one(&mut c)
                .await
                .unwrap();
        }
    }
    (out[0], out[1], out[2], drawn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_reaching_draw_at_together_make_the_draw_once() {
    let app = spawn_app_with_a_site().await;
    let other = second_node(&app).await;
    let id = due_draw(&app, 200, 10).await;
    let (one, two) = tokio::join!(app.service.run_jobs(), other.run_jobs());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.draws + two.draws, 1, "one draw: {one:?} {two:?}");
    // One booking, one notice per applicant: nothing was drawn twice.
    assert_eq!(draw_state(&app, &id).await, (200, 200, 200, true));
    let record = app.get_json(&format!("/v1/events/{id}/draw")).await;
    assert_eq!(record["entrants"].as_array().unwrap().len(), 200);
    assert_eq!(verify_draw(&app.url(&format!("/v1/events/{id}/draw"))).0, 0);
    assert_eq!(other.run_jobs().await.unwrap().draws, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draw_that_fails_part_way_leaves_no_draw_then_the_whole_draw() {
    use sqlx::Connection;
    let app = spawn_app_with_a_site().await;
    let id = due_draw(&app, 30, 5).await;
    // The database refuses the draw's 20th entrant, after 19 bookings and
    // the first offers are written in the same transaction.
    let (create, drop): (&[&str], &str) = if app.database_url.starts_with("postgres") {
        (
            &[
                "CREATE FUNCTION fail_draw() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN IF NEW.draw_rank = 20 THEN RAISE EXCEPTION 'injected'; END IF; \
                 RETURN NEW; END $$",
                "CREATE TRIGGER fail_draw BEFORE INSERT OR UPDATE ON applications \
                 FOR EACH ROW EXECUTE FUNCTION fail_draw()",
            ],
            "DROP TRIGGER fail_draw ON applications",
        )
    } else {
        (
            &["CREATE TRIGGER fail_draw BEFORE UPDATE ON applications \
                 WHEN NEW.draw_rank = 20 BEGIN SELECT RAISE(ABORT, 'injected'); END"],
            "DROP TRIGGER fail_draw",
        )
    };
    async fn exec(url: &str, sql: &str) {
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        } else {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    for sql in create {
        exec(&app.database_url, sql).await;
    }
    let before = draw_state(&app, &id).await;
    assert_eq!(before, (0, 0, 0, false));
    let pass = app.service.run_jobs().await.unwrap();
    assert_eq!((pass.draws, pass.draws_failed), (0, 1), "the draw failed");
    // Nothing of it is left: no booking, no offer, no notice, not drawn.
    assert_eq!(draw_state(&app, &id).await, before);
    let record = app.get_json(&format!("/v1/events/{id}/draw")).await;
    assert!(record["secret"].is_null() && record["entrants"] == json!([]));
    // The next pass, the fault gone, makes the whole draw.
    exec(&app.database_url, drop).await;
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 1);
    assert_eq!(draw_state(&app, &id).await, (30, 30, 30, true));
}

#[tokio::test]
async fn a_draw_event_cancelled_before_its_draw_tells_its_applicants_and_never_draws() {
    let app = spawn_app_with_a_site().await;
    let (site, admin) = site_and_admin(&app).await;
    let event = draw_event(&app, &admin, &site, json!({"capacity": 2})).await;
    let id = event["id"].as_str().unwrap().to_owned();
    let mut people = Vec::new();
    for i in 0..3 {
        let (token, _) = person(&app, &format!("1350000{i:04}"), Profile::default()).await;
        let (s, body) = apply(&app, &id, &token, "k").await;
        assert_eq!(s, 201, "{body}");
        people.push((token, body["id"].as_str().unwrap().to_owned()));
    }
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&admin),
            Some(json!({"status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for (token, a) in &people {
        assert_eq!(status(&app, token, a).await["status"], "cancelled");
        let inbox = app
            .call(Method::GET, "/v1/me/notifications", Some(token), None, None)
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(inbox["items"][0]["type"], "event_cancelled", "{inbox}");
    }
    app.clock.advance(Duration::from_secs(25 * 3600 + 60));
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 0);
    let record = app.get_json(&format!("/v1/events/{id}/draw")).await;
    assert!(record["drawn_at"].is_null() && record["secret"].is_null());
}
