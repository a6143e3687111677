//! Booking under a crowd: 500 people (and their retries) press "book" at once
//! on a 30-seat event with 15/15 seats by gender. Exactly 30 are confirmed
//! within the quotas, the rest waitlisted in order, every retry gets its
//! original answer, and cancellations promote exactly the fitting people.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::union::{JoinPolicy, UnionDraft};
use yizhan::domain::user::{Gender, Profile, Role};

use crate::helpers::{TestApp, draft, spawn_app};

struct Person {
    token: String,
    gender: Gender,
}

async fn people(app: &TestApp, n: usize) -> Vec<Person> {
    let store = app.service.state.store.clone();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let phone = format!("137{i:08}");
        let token = app.token_for(&phone, Role::Worker, &[]).await;
        let gender = if i % 2 == 0 {
            Gender::Female
        } else {
            Gender::Male
        };
        let user = store
            .user_by_phone(&phone.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        store
            .set_profile(
                user.id,
                &Profile {
                    gender: Some(gender),
                    ..Profile::default()
                },
            )
            .await
            .unwrap();
        out.push(Person { token, gender });
    }
    out
}

pub(crate) async fn make_event(app: &TestApp, admin: &str, site: &str, extra: Value) -> String {
    let now = app.clock_now();
    let mut body = json!({
        "kind": "matchmaking", "site_id": site, "title": "单身职工联谊会", "capacity": 30,
        "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::days(10) + chrono::Duration::hours(3)).to_rfc3339(),
        "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "cancel_deadline": (now + chrono::Duration::days(9)).to_rfc3339(),
        "waitlist": true,
        "quotas": [{"attribute": "gender", "value": "male", "seats": 15}, {"attribute": "gender", "value": "female", "seats": 15}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app
        .call(Method::POST, "/v1/events", Some(admin), Some(body), None)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn book(app: &TestApp, event: &str, token: &str, key: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{event}/bookings")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_at_once_never_overbook_and_retries_replay() {
    let app = spawn_app(vec![draft(
        1,
        yizhan::domain::site::Kind::UnionStation,
        36.65,
        117.12,
    )])
    .await;
    let site = app
        .get_json("/v1/sites/nearby?lat=36.65&lon=117.12&k=1")
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let event = make_event(&app, &admin, &site, json!({})).await;
    let crowd = people(&app, 500).await;

    // Everyone at once; the first 100 also retry with the same key, concurrently.
    let mut tasks = tokio::task::JoinSet::new();
    let app = std::sync::Arc::new(app);
    for (i, p) in crowd.iter().enumerate() {
        let tries = if i < 100 { 2 } else { 1 };
        for attempt in 0..tries {
            let (app, event, token) = (app.clone(), event.clone(), p.token.clone());
            tasks.spawn(async move {
                let got = book(&app, &event, &token, &format!("key-{i}")).await;
                (i, attempt, got)
            });
        }
    }
    let mut answers: HashMap<usize, Vec<(u16, Value)>> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (i, _, got) = r.unwrap();
        answers.entry(i).or_default().push(got);
    }
    let mut confirmed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut positions = Vec::new();
    for (i, got) in &answers {
        // A retry is answered with the original result, to the byte.
        assert!(got.iter().all(|g| g == &got[0]), "person {i}: {got:?}");
        let (status, body) = &got[0];
        assert_eq!(*status, 201, "person {i}: {body}");
        match body["status"].as_str().unwrap() {
            "confirmed" => {
                let quota = body["quota"].as_str().unwrap();
                let want = match crowd[*i].gender {
                    Gender::Female => "gender=female",
                    Gender::Male => "gender=male",
                };
                assert_eq!(quota, want);
                *confirmed
                    .entry(if quota.ends_with("female") {
                        "female"
                    } else {
                        "male"
                    })
                    .or_default() += 1;
            }
            "waitlisted" => positions.push(body["waitlist_position"].as_u64().unwrap()),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(answers.len(), 500);
    assert_eq!(confirmed, BTreeMap::from([("female", 15), ("male", 15)]));
    positions.sort_unstable();
    assert_eq!(
        positions,
        (1..=470).collect::<Vec<u64>>(),
        "waitlist positions are 1..470, each once"
    );
    let ev = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(ev["seats_left"], 0);

    // A booking again with a new key: already booked.
    let (status, _) = book(&app, &event, &crowd[0].token, "another").await;
    assert_eq!(status, 409);
    // The same key with another body: 422.
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{event}/bookings")))
        .bearer_auth(&crowd[0].token)
        .header("idempotency-key", "key-0")
        .json(&json!({"note": "different"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Ten cancellations (five of each gender) promote exactly the first five
    // waitlisted people of each gender.
    let booking_of = |i: usize| answers[&i][0].1.clone();
    let mut waitlisted: Vec<(u64, usize)> = (0..500)
        .filter(|i| booking_of(*i)["status"] == "waitlisted")
        .map(|i| (booking_of(i)["waitlist_position"].as_u64().unwrap(), i))
        .collect();
    waitlisted.sort_unstable();
    let first_of = |g: Gender| -> Vec<usize> {
        waitlisted
            .iter()
            .filter(|(_, i)| crowd[*i].gender == g)
            .take(5)
            .map(|(_, i)| *i)
            .collect()
    };
    let mut expected: Vec<usize> = first_of(Gender::Female);
    expected.extend(first_of(Gender::Male));
    expected.sort_unstable();
    let mut cancelled = 0;
    for g in [Gender::Female, Gender::Male] {
        for i in (0..500)
            .filter(|i| booking_of(*i)["status"] == "confirmed" && crowd[*i].gender == g)
            .take(5)
        {
            let id = booking_of(i)["id"].as_str().unwrap().to_owned();
            let r = app
                .call(
                    Method::DELETE,
                    &format!("/v1/bookings/{id}"),
                    Some(&crowd[i].token),
                    None,
                    None,
                )
                .await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
            cancelled += 1;
        }
    }
    assert_eq!(cancelled, 10);
    let mut promoted = Vec::new();
    for (i, p) in crowd.iter().enumerate() {
        let mine = app
            .call(Method::GET, "/v1/me/bookings", Some(&p.token), None, None)
            .await
            .json::<Value>()
            .await
            .unwrap();
        let was = booking_of(i)["status"].as_str().unwrap().to_owned();
        let now = mine["items"][0]["status"].as_str().unwrap().to_owned();
        if was == "waitlisted" && now == "confirmed" {
            promoted.push(i);
        }
    }
    assert_eq!(
        promoted, expected,
        "exactly the first five waitlisted of each gender"
    );
    let ev = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(ev["seats_left"], 0);
}

pub(crate) async fn setup() -> (TestApp, String, String) {
    let app = spawn_app(vec![draft(
        1,
        yizhan::domain::site::Kind::UnionStation,
        36.65,
        117.12,
    )])
    .await;
    let (site, admin) = crate::helpers::site_and_admin(&app).await;
    (app, site, admin)
}

#[tokio::test]
async fn the_calendar_entry_parses_back_in_shanghai_time() {
    let (app, site, admin) = setup().await;
    let starts = "2027-12-02T09:30:00+08:00";
    let event = make_event(&app, &admin, &site, json!({
        "kind": "training", "title": "电工技能培训, 第1期; 免费", "description": "带上工作证\n准时到场",
        "starts_at": starts, "ends_at": "2027-12-02T17:00:00+08:00", "quotas": []
    }))
    .await;
    let token = app.token_for("13700000001", Role::Worker, &[]).await;
    let (status, booking) = book(&app, &event, &token, "k1").await;
    assert_eq!(status, 201);
    let id = booking["id"].as_str().unwrap();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/bookings/{id}.ics"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let text = r.text().await.unwrap();
    // Parsed by the `ical` crate, not by the one that wrote it.
    let mut cals = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let cal = cals.next().expect("a calendar").expect("it parses");
    assert!(cals.next().is_none());
    assert_eq!(cal.timezones.len(), 1);
    assert_eq!(cal.events.len(), 1);
    let prop = |name: &str| {
        cal.events[0]
            .properties
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .clone()
    };
    let start = prop("DTSTART");
    assert_eq!(start.value.as_deref(), Some("20271202T093000"));
    let tzid = start
        .params
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "TZID")
        .unwrap()
        .1;
    assert_eq!(tzid, vec!["Asia/Shanghai".to_owned()]);
    assert_eq!(prop("DTEND").value.as_deref(), Some("20271202T170000"));
    assert_eq!(prop("STATUS").value.as_deref(), Some("CONFIRMED"));
    assert_eq!(prop("UID").value.unwrap(), format!("{id}@yizhan"));
    // Commas and semicolons in text are escaped by the writer and come back as written.
    assert_eq!(
        prop("SUMMARY")
            .value
            .unwrap()
            .replace("\\,", ",")
            .replace("\\;", ";"),
        "电工技能培训, 第1期; 免费"
    );
    // Not someone else's.
    let other = app.token_for("13700000002", Role::Worker, &[]).await;
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/v1/bookings/{id}.ics"),
            Some(&other),
            None,
            None
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn eligibility_window_and_deadline_are_enforced_by_name() {
    let (app, site, admin) = setup().await;
    let store = app.service.state.store.clone();
    let now = app.clock_now();
    let next_year = chrono::Datelike::year(&now) + 1;
    let event = make_event(&app, &admin, &site, json!({
        "kind": "recuperation", "quotas": [], "capacity": 5, "waitlist": false,
        "eligibility": {"union_members_only": true, "frontline_only": true, "min_age": 25, "max_age": 55, "max_per_year": 1},
        "starts_at": format!("{next_year}-06-01T09:00:00+08:00"),
        "ends_at": format!("{next_year}-06-05T17:00:00+08:00"),
        "booking_opens_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "booking_closes_at": (now + chrono::Duration::days(7)).to_rfc3339(),
        "cancel_deadline": (now + chrono::Duration::days(3)).to_rfc3339(),
    }))
    .await;
    let ok = Profile {
        display_name: Some("王师傅".into()),
        union_member_no: Some("GH-1".into()),
        frontline: Some(true),
        birth_year: Some(1985),
        ..Profile::default()
    };
    let union = store
        .create_union(
            UnionDraft {
                name: "历下区快递行业工会".into(),
                adcode: "370102".parse().unwrap(),
                parent_id: None,
                location: None,
                join_policy: JoinPolicy::Auto,
            },
            now,
        )
        .await
        .unwrap();
    // Everyone joins the union but person 2, whose profile claims a member
    // number all the same.
    let person = |n: u32, p: Profile| {
        let (app, store) = (&app, store.clone());
        async move {
            let phone = format!("1370000{n:04}");
            let token = app.token_for(&phone, Role::Worker, &[]).await;
            let u = store
                .user_by_phone(&phone.parse().unwrap())
                .await
                .unwrap()
                .unwrap();
            store.set_profile(u.id, &p).await.unwrap();
            if n != 2 {
                let u = store.user(u.id).await.unwrap().unwrap();
                store.join_union(&u, union.id, now).await.unwrap();
            }
            token
        }
    };
    let good = person(1, ok.clone()).await;
    // Before the window opens.
    let (status, body) = book(&app, &event, &good, "a").await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("booking_window")),
        "{body}"
    );
    app.clock.advance(std::time::Duration::from_secs(2 * 3600));
    for (n, p, rule) in [
        (2, ok.clone(), "union_members_only"),
        (
            3,
            Profile {
                frontline: Some(false),
                ..ok.clone()
            },
            "frontline_only",
        ),
        (
            4,
            Profile {
                birth_year: Some(2010),
                ..ok.clone()
            },
            "age",
        ),
        (
            5,
            Profile {
                birth_year: None,
                ..ok.clone()
            },
            "age",
        ),
    ] {
        let token = person(n, p).await;
        let (status, body) = book(&app, &event, &token, "a").await;
        assert_eq!(status, 403, "{rule}: {body}");
        assert_eq!(body["param"], rule);
    }
    let (status, body) = book(&app, &event, &good, "b").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("confirmed")),
        "{body}"
    );
    // A second trip the same year: refused by max_per_year.
    let second = make_event(
        &app,
        &admin,
        &site,
        json!({
            "kind": "recuperation", "quotas": [], "capacity": 5,
            "eligibility": {"max_per_year": 1},
            // The same calendar year as the first trip.
            "starts_at": format!("{next_year}-09-01T09:00:00+08:00"),
            "ends_at": format!("{next_year}-09-05T17:00:00+08:00"),
        }),
    )
    .await;
    let (status, body) = book(&app, &second, &good, "c").await;
    assert_eq!(
        (status, body["param"].as_str()),
        (403, Some("max_per_year")),
        "{body}"
    );
    // Cancelling before the deadline works; after it, not.
    let late = person(6, ok.clone()).await;
    let (_, b) = book(&app, &event, &late, "d").await;
    let (_, first) = (
        0,
        app.call(Method::GET, "/v1/me/bookings", Some(&good), None, None)
            .await
            .json::<Value>()
            .await
            .unwrap(),
    );
    let first_id = first["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/v1/bookings/{first_id}"),
            Some(&good),
            None,
            None
        )
        .await
        .status(),
        200
    );
    app.clock.advance(std::time::Duration::from_secs(4 * 86400));
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", b["id"].as_str().unwrap()),
            Some(&late),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 422);
    // After booking closes: refused.
    app.clock.advance(std::time::Duration::from_secs(4 * 86400));
    let (status, body) = book(&app, &event, &person(7, ok.clone()).await, "e").await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("booking_window")),
        "{body}"
    );
    // Full without a waitlist: 409.
    let tiny = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "waitlist": false}),
    )
    .await;
    assert_eq!(
        book(&app, &tiny, &person(8, ok.clone()).await, "f").await.0,
        201
    );
    assert_eq!(
        book(&app, &tiny, &person(9, ok.clone()).await, "f").await.0,
        409
    );
}

#[tokio::test]
async fn check_in_once_refuse_foreign_codes_and_list_attendees() {
    let (app, site, admin) = setup().await;
    let manager = app
        .token_for("13500000000", Role::SiteManager, &[site.parse().unwrap()])
        .await;
    let now = app.clock_now();
    let times = json!({"quotas": [], "capacity": 5,
        "starts_at": (now + chrono::Duration::hours(2)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(4)).to_rfc3339(),
        "cancel_deadline": (now + chrono::Duration::hours(1)).to_rfc3339()});
    let event = make_event(&app, &manager, &site, times.clone()).await;
    let other_event = make_event(&app, &admin, &site, times).await;
    let a = app.token_for("13700000011", Role::Worker, &[]).await;
    let b = app.token_for("13700000012", Role::Worker, &[]).await;
    let (_, booked_a) = book(&app, &event, &a, "a").await;
    let (_, _booked_b) = book(&app, &event, &b, "b").await;
    let (_, foreign) = book(&app, &other_event, &a, "c").await;
    let code = booked_a["checkin_code"]
        .as_str()
        .expect("a confirmed booking carries its code")
        .to_owned();
    assert_eq!(code.len(), 24);
    assert!(!code.contains(booked_a["id"].as_str().unwrap()));

    let scan = |code: String, token: String, ev: String| {
        let app = &app;
        async move {
            let r = app
                .call(
                    Method::POST,
                    "/v1/checkins",
                    Some(&token),
                    Some(json!({"event_id": ev, "code": code})),
                    None,
                )
                .await;
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = scan(code.clone(), manager.clone(), event.clone()).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["already_checked_in"], false);
    assert_eq!(first["booking"]["status"], "checked_in");
    app.clock.advance(std::time::Duration::from_secs(600));
    let (s, second) = scan(code.clone(), manager.clone(), event.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(second["already_checked_in"], true);
    assert_eq!(
        second["checked_in_at"], first["checked_in_at"],
        "the first time is kept"
    );
    // A code for another event, a forged code, a non-manager scanning.
    let (s, p) = scan(
        foreign["checkin_code"].as_str().unwrap().to_owned(),
        manager.clone(),
        event.clone(),
    )
    .await;
    assert_eq!((s, p["param"].as_str()), (422, Some("code")), "{p}");
    let mut forged = code.clone().into_bytes();
    forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
    let (s, _) = scan(
        String::from_utf8(forged).unwrap(),
        manager.clone(),
        event.clone(),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = scan(code.clone(), a.clone(), event.clone()).await;
    assert_eq!(s, 403);

    // Attendees, as JSON and CSV; after the end, B (never checked in) is a no-show.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/events/{event}/attendees"),
            Some(&manager),
            None,
            None,
        )
        .await;
    let list: Value = r.json().await.unwrap();
    // (Booked in the same millisecond: in the order of their ids.)
    let mut statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec!["checked_in", "confirmed"]);
    assert!(list["items"][0]["phone"].as_str().unwrap().contains("****"));
    app.clock.advance(std::time::Duration::from_secs(5 * 3600));
    // After the end, the worker marks whoever never checked in.
    // (this event's unchecked booking, and the other event's)
    assert_eq!(app.service.run_jobs().await.unwrap().no_shows, 2);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/events/{event}/attendees?format=csv"),
            Some(&manager),
            None,
            None,
        )
        .await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text().await.unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
    let status_col = header.iter().position(|h| h == "status").unwrap();
    let rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        rows.iter()
            .map(|r| r[status_col].as_str())
            .collect::<Vec<_>>(),
        vec!["checked_in", "no_show"]
    );
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/v1/events/{event}/attendees"),
            Some(&a),
            None,
            None
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn offers_lapse_and_pass_on_and_a_cancelled_event_cancels_its_bookings() {
    let (app, site, admin) = setup().await;
    let manager = app
        .token_for("13500000000", Role::SiteManager, &[site.parse().unwrap()])
        .await;
    let event = make_event(
        &app,
        &manager,
        &site,
        json!({"kind": "recuperation", "quotas": [], "capacity": 1, "offer_hours": 24}),
    )
    .await;
    let people: Vec<String> = {
        let mut v = Vec::new();
        for n in 0..3 {
            v.push(
                app.token_for(&format!("1370000002{n}"), Role::Worker, &[])
                    .await,
            );
        }
        v
    };
    let (_, a) = book(&app, &event, &people[0], "a").await;
    let (_, b) = book(&app, &event, &people[1], "b").await;
    let (_, c) = book(&app, &event, &people[2], "c").await;
    assert_eq!(
        (
            a["status"].as_str(),
            b["status"].as_str(),
            c["status"].as_str()
        ),
        (Some("confirmed"), Some("waitlisted"), Some("waitlisted"))
    );
    let mine = |i: usize| {
        let app = &app;
        let token = people[i].clone();
        async move {
            app.call(Method::GET, "/v1/me/bookings", Some(&token), None, None)
                .await
                .json::<Value>()
                .await
                .unwrap()["items"][0]
                .clone()
        }
    };
    // A cancels: B is offered the seat for 24 hours.
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", a["id"].as_str().unwrap()),
            Some(&people[0]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let b_now = mine(1).await;
    assert_eq!(b_now["status"], "offered");
    assert!(b_now["offer_expires_at"].is_string());
    assert_eq!(mine(2).await["waitlist_position"], 1);
    // B lets it lapse: the worker passes it to C, who accepts.
    app.clock.advance(std::time::Duration::from_secs(25 * 3600));
    assert_eq!(app.service.run_jobs().await.unwrap().offers_lapsed, 1);
    assert_eq!(mine(1).await["status"], "cancelled");
    assert_eq!(mine(2).await["status"], "offered");
    let r = app
        .call(
            Method::POST,
            &format!("/v1/bookings/{}/accept", b["id"].as_str().unwrap()),
            Some(&people[1]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 409, "a lapsed offer cannot be accepted");
    let r = app
        .call(
            Method::POST,
            &format!("/v1/bookings/{}/accept", c["id"].as_str().unwrap()),
            Some(&people[2]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(accepted["status"], "confirmed");
    assert!(accepted["checkin_code"].is_string());

    // The manager cancels the event: every booking is cancelled and no one can book.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{event}"),
            Some(&people[0]),
            Some(json!({"status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{event}"),
            Some(&manager),
            Some(json!({"status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(mine(2).await["status"], "cancelled");
    let late = app.token_for("13700000029", Role::Worker, &[]).await;
    let (status, body) = book(&app, &event, &late, "z").await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("status")),
        "{body}"
    );
    let _ = admin;
}

#[tokio::test]
async fn editing_an_event_moves_the_waitlist_and_my_bookings_split_upcoming_and_past() {
    let (app, site, admin) = setup().await;
    let now = app.clock_now();
    let soon = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "title": "近期",
        "starts_at": (now + chrono::Duration::hours(3)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(5)).to_rfc3339(),
        "cancel_deadline": (now + chrono::Duration::hours(2)).to_rfc3339()}),
    )
    .await;
    let later = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 5, "title": "下月"}),
    )
    .await;
    let a = app.token_for("13700000031", Role::Worker, &[]).await;
    let b = app.token_for("13700000032", Role::Worker, &[]).await;
    assert_eq!(book(&app, &soon, &a, "1").await.1["status"], "confirmed");
    assert_eq!(book(&app, &soon, &b, "1").await.1["status"], "waitlisted");
    assert_eq!(book(&app, &later, &a, "2").await.1["status"], "confirmed");
    // A bad edit changes nothing; raising the capacity confirms B at once.
    let patch = |body: Value| {
        let (app, admin, soon) = (&app, admin.clone(), soon.clone());
        async move {
            app.call(
                Method::PATCH,
                &format!("/v1/events/{soon}"),
                Some(&admin),
                Some(body),
                None,
            )
            .await
        }
    };
    let r = patch(json!({"capacity": 1, "title": "近期（改）", "ends_at": "2000-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status(), 422);
    let r = patch(json!({"capacity": 2, "title": "近期（改）"})).await;
    assert_eq!(r.status(), 200);
    let ev: Value = r.json().await.unwrap();
    assert_eq!(
        (ev["title"].as_str(), ev["seats_left"].as_u64()),
        (Some("近期（改）"), Some(0))
    );
    let mine: Value = app
        .call(Method::GET, "/v1/me/bookings", Some(&b), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"][0]["status"], "confirmed");
    // Upcoming soonest first; after the first event ends it is past and last.
    let mine: Value = app
        .call(Method::GET, "/v1/me/bookings", Some(&a), None, None)
        .await
        .json()
        .await
        .unwrap();
    let titles: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["近期（改）", "下月"]);
    app.clock.advance(std::time::Duration::from_secs(6 * 3600));
    let mine: Value = app
        .call(Method::GET, "/v1/me/bookings", Some(&a), None, None)
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<(&str, bool)> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["event"]["title"].as_str().unwrap(),
                i["upcoming"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![("下月", true), ("近期（改）", false)]);
}

#[tokio::test]
async fn keys_live_a_day_and_single_only_is_enforced() {
    let (app, site, admin) = setup().await;
    let event = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 5, "kind": "matchmaking",
        "eligibility": {"single_only": true}}),
    )
    .await;
    let store = app.service.state.store.clone();
    let married = app.token_for("13700000041", Role::Worker, &[]).await;
    let u = store
        .user_by_phone(&"13700000041".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .set_profile(
            u.id,
            &Profile {
                marital_status: Some(yizhan::domain::user::MaritalStatus::Married),
                ..Profile::default()
            },
        )
        .await
        .unwrap();
    let (status, body) = book(&app, &event, &married, "m").await;
    assert_eq!(
        (status, body["param"].as_str()),
        (403, Some("single_only")),
        "{body}"
    );

    let single = app.token_for("13700000042", Role::Worker, &[]).await;
    let u = store
        .user_by_phone(&"13700000042".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .set_profile(
            u.id,
            &Profile {
                marital_status: Some(yizhan::domain::user::MaritalStatus::Single),
                ..Profile::default()
            },
        )
        .await
        .unwrap();
    let (status, first) = book(&app, &event, &single, "k").await;
    assert_eq!(status, 201);
    assert_eq!(
        book(&app, &event, &single, "k").await,
        (201, first.clone()),
        "replayed within the day"
    );
    // A day later the key answers nothing: the same request is decided anew
    // (already booked), and the old record is purged by the next keyed write.
    app.clock
        .advance(std::time::Duration::from_secs(24 * 3600 + 1));
    assert_eq!(book(&app, &event, &single, "k").await.0, 409);
    // The worker purges records past their day; the key just reused keeps its new answer.
    let married_id = store
        .user_by_phone(&"13700000041".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let single_id = u.id;
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.idempotencies(&[(married_id, "m".into())])
            .await
            .unwrap()
            .len()
            == 1
    );
    drop(tx);
    assert!(app.service.run_jobs().await.unwrap().keys_purged >= 1);
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.idempotencies(&[(married_id, "m".into())])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.idempotencies(&[(single_id, "k".into())])
            .await
            .unwrap()
            .len()
            == 1
    );
    drop(tx);
}

#[tokio::test]
async fn a_patch_that_fails_changes_nothing() {
    let (app, site, admin) = setup().await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 2})).await;
    let before = app.get_json(&format!("/v1/events/{event}")).await;
    let worker = app.token_for("13700000051", Role::Worker, &[]).await;
    assert_eq!(book(&app, &event, &worker, "w").await.0, 201);
    for (body, param) in [
        (json!({"title": "新标题", "status": "bogus"}), "status"),
        (json!({"title": "新标题", "capacity": 0}), "capacity"),
        (
            json!({"title": "新标题", "ends_at": before["starts_at"].clone()}),
            "ends_at",
        ),
        (
            json!({"title": "新标题", "capacity": 3, "waitlist": "yes"}),
            "waitlist",
        ),
    ] {
        let r = app
            .call(
                Method::PATCH,
                &format!("/v1/events/{event}"),
                Some(&admin),
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(r.status(), 422, "{body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["param"], param, "{p}");
        let now = app.get_json(&format!("/v1/events/{event}")).await;
        let mut expected = before.clone();
        expected["seats_left"] = json!(1);
        assert_eq!(now, expected, "{body} changed nothing");
    }
    // A capacity below the seats held is refused whole, title and all.
    let second = app.token_for("13700000052", Role::Worker, &[]).await;
    assert_eq!(book(&app, &event, &second, "s").await.0, 201);
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{event}"),
            Some(&admin),
            Some(json!({"title": "新标题", "capacity": 1, "status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 422);
    let now = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(
        (
            now["title"].clone(),
            now["status"].as_str(),
            now["seats_left"].as_u64()
        ),
        (before["title"].clone(), Some("published"), Some(0))
    );
    // Valid together, applied together.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{event}"),
            Some(&admin),
            Some(json!({"title": "新标题", "status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let now = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(
        (now["title"].as_str(), now["status"].as_str()),
        (Some("新标题"), Some("cancelled"))
    );
}

/// Random event bodies never fail the server, and an edit that is refused
/// leaves the event exactly as it was.
#[tokio::test]
async fn random_event_edits_never_fail_and_refused_ones_change_nothing() {
    use rand::{Rng, SeedableRng};
    let (app, site, admin) = setup().await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 3})).await;
    for n in 0..4 {
        let w = app
            .token_for(&format!("1370000060{n}"), Role::Worker, &[])
            .await;
        book(&app, &event, &w, "k").await;
    }
    let now = app.clock_now();
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(1),
        json!(2),
        json!(5),
        json!(-3),
        json!(100001),
        json!(1.5),
        json!(""),
        json!("新标题"),
        json!("cancelled"),
        json!("published"),
        json!("bogus"),
        json!((now + chrono::Duration::days(3)).to_rfc3339()),
        json!((now + chrono::Duration::days(20)).to_rfc3339()),
        json!((now - chrono::Duration::days(1)).to_rfc3339()),
        json!("not a time"),
        json!([]),
        json!({}),
    ];
    let keys = [
        "title",
        "description",
        "starts_at",
        "ends_at",
        "capacity",
        "booking_opens_at",
        "booking_closes_at",
        "cancel_deadline",
        "waitlist",
        "status",
        "quotas",
        "x",
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut seen = BTreeMap::new();
    for _ in 0..300 {
        let mut body = serde_json::Map::new();
        for _ in 0..rng.random_range(1..4) {
            body.insert(
                keys[rng.random_range(0..keys.len())].to_owned(),
                values[rng.random_range(0..values.len())].clone(),
            );
        }
        let body = Value::Object(body);
        let before = app.get_json(&format!("/v1/events/{event}")).await;
        let r = app
            .call(
                Method::PATCH,
                &format!("/v1/events/{event}"),
                Some(&admin),
                Some(body.clone()),
                None,
            )
            .await;
        let status = r.status().as_u16();
        assert!(status < 500, "{body}: {status}");
        *seen.entry(status).or_insert(0) += 1;
        if status >= 400 {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let after = app.get_json(&format!("/v1/events/{event}")).await;
            assert_eq!(
                before, after,
                "{body} was refused ({status}) yet changed the event"
            );
        }
    }
    assert!(seen.get(&422).copied().unwrap_or(0) > 50, "{seen:?}");
    assert!(seen.get(&200).copied().unwrap_or(0) > 10, "{seen:?}");
}

/// The keys that sign check-in codes and join codes are read when the service
/// starts, so no answer waits to create one: a crowd's first confirmed
/// bookings once waited up to a second for SQLite's write lock, held by the
/// writer's batches, to create the check-in key.
#[tokio::test]
async fn the_signing_keys_exist_before_the_first_request() {
    use sqlx::Connection;
    let app = spawn_app(vec![]).await;
    let q = "SELECT name FROM secrets ORDER BY name";
    let names: Vec<String> = if app.database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_scalar(q).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_scalar(q).fetch_all(&mut c).await.unwrap()
    };
    assert!(
        names.iter().any(|n| n == "checkin-hmac") && names.iter().any(|n| n == "union-join-hmac"),
        "{names:?}"
    );
}

/// Lists page one way: `limit` and `cursor` in, `items` and `next_cursor`
/// out. Walking an event's attendees and a worker's bookings page by page
/// gives the whole list once, in its order; a cursor not of the list's form
/// is 400 naming `cursor`.
#[tokio::test]
async fn lists_page_by_cursor_through_the_whole_list_once() {
    let (app, site, admin) = setup().await;
    let crowd = people(&app, 7).await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 4})).await;
    let mut events = vec![event.clone()];
    for (i, p) in crowd.iter().enumerate() {
        let (status, _) = book(&app, &event, &p.token, &format!("page-{i}")).await;
        assert_eq!(status, 201);
        app.clock.advance(std::time::Duration::from_millis(3));
    }
    let walk = |path: String, token: String| {
        let app = &app;
        async move {
            let mut items = Vec::new();
            let mut pages = 0;
            let mut cursor: Option<String> = None;
            loop {
                let sep = if path.contains('?') { '&' } else { '?' };
                let mut url = format!("{path}{sep}limit=2");
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let r = app.call(Method::GET, &url, Some(&token), None, None).await;
                assert_eq!(r.status(), 200, "{url}");
                let page: Value = r.json().await.unwrap();
                let got = page["items"].as_array().unwrap().clone();
                assert!(got.len() <= 2);
                items.extend(got);
                pages += 1;
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            (items, pages)
        }
    };
    let (attendees, pages) = walk(format!("/v1/events/{event}/attendees"), admin.clone()).await;
    assert_eq!(pages, 4);
    let whole: Value = app
        .call(
            Method::GET,
            &format!("/v1/events/{event}/attendees?limit=200"),
            Some(&admin),
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(Value::Array(attendees.clone()), whole["items"]);
    assert!(whole["next_cursor"].is_null());
    let booked: Vec<&str> = attendees
        .iter()
        .map(|a| a["booked_at"].as_str().unwrap())
        .collect();
    assert!(booked.windows(2).all(|w| w[0] < w[1]), "{booked:?}");
    assert_eq!(
        attendees
            .iter()
            .filter(|a| a["status"] == "waitlisted")
            .count(),
        3
    );

    // A worker's bookings: upcoming ones soonest first, across pages.
    let worker = &crowd[0].token;
    for days in [30, 20] {
        let e = make_event(
            &app,
            &admin,
            &site,
            json!({"quotas": [], "starts_at": (app.clock_now() + chrono::Duration::days(days)).to_rfc3339(),
                   "ends_at": (app.clock_now() + chrono::Duration::days(days) + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
        assert_eq!(book(&app, &e, worker, &format!("mine-{days}")).await.0, 201);
        events.push(e);
    }
    let (mine, pages) = walk("/v1/me/bookings".to_owned(), worker.clone()).await;
    assert_eq!(pages, 2);
    let order: Vec<&str> = mine
        .iter()
        .map(|b| b["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [events[0].as_str(), events[2].as_str(), events[1].as_str()]
    );

    for bad in ["x", "1", "1.2.3", "1..2"] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/events/{event}/attendees?cursor={bad}"),
                Some(&admin),
                None,
                None,
            )
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["param"], "cursor");
    }
}
