//! Web Push end to end: subscriptions through the API, pushes to a push
//! service stand-in on loopback (`tests/push_service.py`) that checks the
//! VAPID JWT and decrypts the aes128gcm payload with Python's `cryptography`
//! and `http_ece`, an implementation independent of the one under test.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::user::Role;

use crate::events::{book, make_event, setup};
use crate::helpers::{PushService, TestApp};

impl PushService {
    async fn cue(&self, name: &str, responses: Value, then: Value) {
        let r = self
            .http
            .put(format!("{}/cues/{name}", self.base))
            .json(&json!({"responses": responses, "then": then}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    async fn log_of(&self, name: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|e| e["name"] == name)
            .collect()
    }

    async fn held(&self) -> u64 {
        self.http
            .get(format!("{}/held", self.base))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["held"]
            .as_u64()
            .unwrap()
    }
}

/// Subscribe `token`'s person with this browser; the API's answer.
async fn subscribe(app: &TestApp, token: &str, browser: &Value) -> reqwest::Response {
    app.call(
        Method::POST,
        "/v1/push/subscriptions",
        Some(token),
        Some(browser.clone()),
        None,
    )
    .await
}

async fn inbox_top(app: &TestApp, token: &str) -> Value {
    let page: Value = app
        .call(Method::GET, "/v1/me/notifications", Some(token), None, None)
        .await
        .json()
        .await
        .unwrap();
    page["items"][0].clone()
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Check one push as the stand-in saw it: a verified JWT signed with the
/// served key, a decrypted payload naming this notification.
fn assert_verified(entry: &Value, public_key: &str, notification: &Value) {
    assert!(entry["error"].is_null(), "the stand-in refused it: {entry}");
    assert_eq!(entry["k"], public_key, "signed with the served VAPID key");
    let p = &entry["payload"];
    assert_eq!(p["id"], notification["id"]);
    assert_eq!(p["type"], notification["type"]);
    assert_eq!(p["title"], notification["title"]);
    assert_eq!(p["body"], notification["body"]);
    assert_eq!(p["url"], notification["url"]);
    assert_eq!(entry["headers"]["content-encoding"], "aes128gcm");
}

#[tokio::test]
async fn subscriptions_are_validated_kept_once_per_endpoint_and_removed() {
    let (app, _, _) = setup().await;
    let push = PushService::start().await;
    let w = app.token_for("13700000401", Role::Worker, &[]).await;
    let other = app.token_for("13700000402", Role::Worker, &[]).await;
    let key = app.get_json("/v1/push/vapid-public-key").await;
    let raw = yizhan::domain::push::from_b64url(key["public_key"].as_str().unwrap()).unwrap();
    assert_eq!((raw.len(), raw[0]), (65, 4), "an uncompressed P-256 point");

    let browser = push.subscriber("phone").await;
    let r = subscribe(&app, &w, &browser).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["endpoint"], browser["endpoint"]);
    assert!(first["types"].is_null());
    // The same endpoint again: the same id, now with types.
    let mut again = browser.clone();
    again["types"] = json!(["seat_offered", "event_cancelled"]);
    again["expirationTime"] = json!(1_800_000_000_000u64);
    let r = subscribe(&app, &w, &again).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["types"], json!(["event_cancelled", "seat_offered"]));

    let bad = |path: &[&str], value: Value| {
        let mut b = browser.clone();
        match path {
            [k] => b[*k] = value,
            [a, k] => b[*a][*k] = value,
            _ => unreachable!(),
        }
        b
    };
    for (body, field) in [
        (
            bad(&["endpoint"], json!("http://push.example.com/x")),
            "endpoint",
        ),
        (
            bad(&["endpoint"], json!("https://192.168.1.1/x")),
            "endpoint",
        ),
        (bad(&["keys", "p256dh"], json!("BAAA")), "keys.p256dh"),
        (bad(&["keys", "auth"], json!("c2hvcnQ")), "keys.auth"),
        (bad(&["keys", "auth"], Value::Null), "keys.auth"),
        (bad(&["types"], json!(["spam"])), "types"),
        (bad(&["types"], json!([])), "types"),
        (bad(&["extra"], json!(1)), "extra"),
        (bad(&["expirationTime"], json!({"at": 1})), "expirationTime"),
        (bad(&["expirationTime"], json!("soon")), "expirationTime"),
    ] {
        let r = subscribe(&app, &w, &body).await;
        assert_eq!(r.status(), 422, "{body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["param"], field, "{p}");
    }
    let r = subscribe(&app, &w, &json!([1])).await;
    assert_eq!(r.status(), 400);
    let r = app
        .call(
            Method::POST,
            "/v1/push/subscriptions",
            None,
            Some(browser.clone()),
            None,
        )
        .await;
    assert_eq!(r.status(), 401);

    let mine: Value = app
        .call(Method::GET, "/v1/push/subscriptions", Some(&w), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert!(
        mine["items"][0].get("keys").is_none(),
        "secrets are not shown back"
    );
    let path = format!("/v1/push/subscriptions/{}", first["id"].as_str().unwrap());
    let r = app
        .call(Method::DELETE, &path, Some(&other), None, None)
        .await;
    assert_eq!(r.status(), 404, "not theirs");
    let r = app.call(Method::DELETE, &path, Some(&w), None, None).await;
    assert_eq!(r.status(), 204);
    let r = app.call(Method::DELETE, &path, Some(&w), None, None).await;
    assert_eq!(r.status(), 404);
}

/// The stand-in answers 429 (Retry-After: 120), then 500, then 201 for one
/// browser, and 410 for another: the push is retried no sooner than asked,
/// backs off, arrives decrypted, and the gone subscription is deleted.
#[tokio::test]
async fn pushes_are_verified_decrypted_retried_and_gone_ones_removed() {
    let (app, site, admin) = setup().await;
    app.move_to_china_time(10, 0);
    let push = PushService::start().await;
    let public_key = app.get_json("/v1/push/vapid-public-key").await["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = app.token_for("13700000411", Role::Worker, &[]).await;
    let g = app.token_for("13700000412", Role::Worker, &[]).await;
    subscribe(&app, &a, &push.subscriber("a").await).await;
    subscribe(&app, &g, &push.subscriber("g").await).await;
    push.cue(
        "a",
        json!([{"status": 429, "retry_after": "120"}, {"status": 500}]),
        json!(201),
    )
    .await;
    push.cue("g", json!([{"status": 410}]), json!(201)).await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 5})).await;
    book(&app, &event, &a, "a").await;
    book(&app, &event, &g, "g").await;
    let notice = inbox_top(&app, &a).await;
    assert_eq!(notice["type"], "booking_confirmed");

    app.service.run_jobs().await.unwrap();
    let seen = push.log_of("a").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["status"], 429);
    assert_verified(&seen[0], &public_key, &notice);
    let h = &seen[0]["headers"];
    let ttl: i64 = h["ttl"].as_str().unwrap().parse().unwrap();
    // The event starts 10 days on: the push is worth keeping until then.
    assert!(
        (9 * 86400..=10 * 86400).contains(&ttl),
        "TTL until the event starts: {ttl}"
    );
    assert_eq!(h["urgency"], "normal");
    assert_eq!(h["topic"].as_str().unwrap().len(), 32, "{h}");
    let claims = &seen[0]["claims"];
    assert_eq!(claims["aud"], push.base, "aud is the push service's origin");
    // The 410: that subscription is gone.
    assert_eq!(push.log_of("g").await[0]["status"], 410);
    let gone: Value = app
        .call(Method::GET, "/v1/push/subscriptions", Some(&g), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(gone["items"], json!([]));

    // Retry-After: 120 s holds it even though the backoff (30 s) has passed.
    app.clock.advance(Duration::from_secs(90));
    app.service.run_jobs().await.unwrap();
    assert_eq!(push.log_of("a").await.len(), 1, "not before Retry-After");
    app.clock.advance(Duration::from_secs(31));
    app.service.run_jobs().await.unwrap();
    let seen = push.log_of("a").await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["status"], 500);
    // The second failure backs off 60 s.
    app.clock.advance(Duration::from_secs(59));
    app.service.run_jobs().await.unwrap();
    assert_eq!(push.log_of("a").await.len(), 2, "backing off");
    app.clock.advance(Duration::from_secs(2));
    let report = app.service.run_jobs().await.unwrap();
    assert_eq!(report.deliveries.sent, 1);
    let seen = push.log_of("a").await;
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2]["status"], 201);
    assert_verified(&seen[2], &public_key, &notice);
    // And never again.
    app.clock.advance(Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    assert_eq!(push.log_of("a").await.len(), 3);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for (name, want) in [
        (
            "yizhan_notification_deliveries_total{channel=\"push\",outcome=\"sent\"}",
            1.0,
        ),
        (
            "yizhan_notification_deliveries_total{channel=\"push\",outcome=\"retried\"}",
            2.0,
        ),
        (
            "yizhan_notification_deliveries_total{channel=\"push\",outcome=\"gone\"}",
            1.0,
        ),
        ("yizhan_push_subscriptions_removed_total", 1.0),
    ] {
        assert_eq!(metric(&metrics, name), want, "{name} in\n{metrics}");
    }
}

/// A pushed offer is not texted; a cancelled booking's freed seat reaches
/// the promoted person's phone, decrypted.
#[tokio::test]
async fn a_freed_seat_reaches_the_promoted_persons_browser() {
    let (app, site, admin) = setup().await;
    app.move_to_china_time(10, 0);
    let push = PushService::start().await;
    let public_key = app.get_json("/v1/push/vapid-public-key").await["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "offer_hours": 12}),
    )
    .await;
    let a = app.token_for("13700000421", Role::Worker, &[]).await;
    let b = app.token_for("13700000422", Role::Worker, &[]).await;
    let (_, first) = book(&app, &event, &a, "a").await;
    let (_, waiting) = book(&app, &event, &b, "b").await;
    assert_eq!(waiting["status"], "waitlisted");
    subscribe(&app, &b, &push.subscriber("b").await).await;
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", first["id"].as_str().unwrap()),
            Some(&a),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let notice = inbox_top(&app, &b).await;
    assert_eq!(notice["type"], "seat_offered");
    app.service.run_jobs().await.unwrap();
    let seen = push.log_of("b").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["status"], 201);
    assert_verified(&seen[0], &public_key, &notice);
    assert_eq!(seen[0]["headers"]["urgency"], "high");
    let ttl: i64 = seen[0]["headers"]["ttl"].as_str().unwrap().parse().unwrap();
    assert!(
        (11 * 3600..=12 * 3600).contains(&ttl),
        "until the offer's deadline: {ttl}"
    );
    // Pushed and accepted: no SMS after the fallback delay.
    app.clock.advance(Duration::from_secs(20 * 60));
    app.service.run_jobs().await.unwrap();
    assert!(app.sms.texts_to(&"13700000422".parse().unwrap()).is_empty());
}

/// Quiet hours hold a push until they end, except an offered seat; a muted
/// type is never pushed; the inbox has everything.
#[tokio::test]
async fn quiet_hours_hold_pushes_and_muted_types_are_not_pushed() {
    let (app, site, admin) = setup().await;
    let push = PushService::start().await;
    let w = app.token_for("13700000431", Role::Worker, &[]).await;
    subscribe(&app, &w, &push.subscriber("w").await).await;
    let settings = |body: Value| {
        let (app, w) = (&app, w.clone());
        async move {
            app.call(
                Method::PUT,
                "/v1/me/notification-settings",
                Some(&w),
                Some(body),
                None,
            )
            .await
        }
    };
    let r = settings(
        json!({"muted_types": ["site_closed"], "quiet_hours": {"from": "22:00", "to": "07:00"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let got = app
        .call(
            Method::GET,
            "/v1/me/notification-settings",
            Some(&w),
            None,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        got,
        json!({"muted_types": ["site_closed"], "quiet_hours": {"from": "22:00", "to": "07:00"}})
    );
    for (body, field) in [
        (json!({"muted_types": ["nope"]}), "muted_types"),
        (json!({"quiet_hours": {"from": "22:00"}}), "quiet_hours.to"),
        (
            json!({"quiet_hours": {"from": "7", "to": "08:00"}}),
            "quiet_hours.from",
        ),
        (
            json!({"quiet_hours": {"from": "08:00", "to": "08:00"}}),
            "quiet_hours.to",
        ),
        (json!({"quiet": true}), "quiet"),
    ] {
        let r = settings(body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        assert_eq!(r.json::<Value>().await.unwrap()["param"], field);
    }

    // 23:00: a booking confirmation waits; the site closing is muted.
    app.move_to_china_time(23, 0);
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 5})).await;
    book(&app, &event, &w, "w").await;
    app.call(
        Method::PUT,
        &format!("/v1/sites/{site}/follow"),
        Some(&w),
        None,
        None,
    )
    .await;
    let etag = app.etag(&site).await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}"),
            Some(&admin),
            Some(json!({"status": "temporarily_closed"})),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.service.run_jobs().await.unwrap();
    assert!(push.log_of("w").await.is_empty(), "quiet hours");
    let inbox: Value = app
        .call(Method::GET, "/v1/me/notifications", Some(&w), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        inbox["items"].as_array().unwrap().len(),
        2,
        "the inbox has both"
    );
    // 07:00: the confirmation goes; the muted closure never does.
    app.move_to_china_time(7, 0);
    app.service.run_jobs().await.unwrap();
    let seen = push.log_of("w").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["payload"]["type"], "booking_confirmed");
}

/// A worker killed mid-batch: the pushes it had delivered (201) are not sent
/// again, the ones it held are taken up after their lease, and every
/// notification arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing_and_repeats_no_accepted_push() {
    let (app, site, admin) = setup().await;
    app.move_to_china_time(10, 0);
    let push = PushService::start().await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 40})).await;
    const N: usize = 20;
    let mut names = Vec::new();
    for i in 0..N {
        let name = format!("u{i}");
        let t = app
            .token_for(&format!("137000005{i:02}"), Role::Worker, &[])
            .await;
        subscribe(&app, &t, &push.subscriber(&name).await).await;
        // The first half is answered at once, the rest held unanswered.
        let first = if i < N / 2 { json!(201) } else { json!("hold") };
        push.cue(&name, json!([{"status": first}]), json!(201))
            .await;
        book(&app, &event, &t, &name).await;
        names.push(name);
    }
    let worker = app.service.worker.clone();
    let pass = tokio::spawn(async move { worker.run_due().await });
    // Wait until half were accepted and recorded and the rest are held.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let sent = metric(
            &metrics,
            "yizhan_notification_deliveries_total{channel=\"push\",outcome=\"sent\"}",
        );
        if sent as usize == N / 2 && push.held().await as usize == N / 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stuck: sent {sent}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pass.abort();
    assert!(pass.await.unwrap_err().is_cancelled(), "killed mid-batch");

    // Restarted: the held half is still leased to the dead worker…
    app.service.run_jobs().await.unwrap();
    assert_eq!(push.log().await.len(), N, "nothing new while leased");
    // …and is taken up when the lease ends.
    app.clock.advance(Duration::from_secs(61));
    let report = app.service.run_jobs().await.unwrap();
    assert_eq!(report.deliveries.sent as usize, N / 2);
    let log = push.log().await;
    for name in &names {
        let accepted = log
            .iter()
            .filter(|e| e["name"] == name.as_str() && e["status"] == 201)
            .count();
        assert_eq!(accepted, 1, "{name}: exactly one accepted push");
        assert!(
            log.iter()
                .filter(|e| e["name"] == name.as_str())
                .all(|e| e["error"].is_null())
        );
    }
}
