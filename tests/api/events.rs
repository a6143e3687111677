//! Booking under a crowd: 500 people (and their retries) press "book" at once
//! on a 30-seat event with 15/15 seats by gender. Exactly 30 are confirmed
//! within the quotas, the rest waitlisted in order, every retry gets its
//! original answer, and cancellations promote exactly the fitting people.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::{Value, json};
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

async fn make_event(app: &TestApp, admin: &str, site: &str, extra: Value) -> String {
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

async fn book(app: &TestApp, event: &str, token: &str, key: &str) -> (u16, Value) {
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
