//! Notifications: every notice lands in the inbox in the transaction of its
//! cause; what must not be missed falls back to SMS when unread, never at
//! night; a delivery a dead worker held is taken up again.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::user::Role;

use crate::events::{book, make_event, setup};
use crate::helpers::TestApp;

pub(crate) async fn inbox(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/me/notifications{query}"),
            Some(token),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn unread(app: &TestApp, token: &str) -> u64 {
    app.call(Method::GET, "/v1/me", Some(token), None, None)
        .await
        .json::<Value>()
        .await
        .unwrap()["unread_notifications"]
        .as_u64()
        .unwrap()
}

pub(crate) async fn cancel(app: &TestApp, token: &str, booking: &Value) {
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", booking["id"].as_str().unwrap()),
            Some(token),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_freed_seat_tells_the_promoted_person_in_their_inbox() {
    let (app, site, admin) = setup().await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 1})).await;
    let a = app.token_for("13700000301", Role::Worker, &[]).await;
    let b = app.token_for("13700000302", Role::Worker, &[]).await;
    let (_, first) = book(&app, &event, &a, "a").await;
    book(&app, &event, &b, "b").await;
    assert_eq!(types(&inbox(&app, &a, "").await), ["booking_confirmed"]);
    assert_eq!(types(&inbox(&app, &b, "").await), Vec::<String>::new());
    assert_eq!(unread(&app, &b).await, 0);

    cancel(&app, &a, &first).await;
    let page = inbox(&app, &b, "").await;
    assert_eq!(types(&page), ["waitlist_promoted"]);
    let n = &page["items"][0];
    assert_eq!(n["url"], format!("/events/{event}"));
    assert_eq!(n["data"]["event_id"], event);
    // The data names its shape (the contract's NoticeData) by the notice's type.
    assert_eq!(n["data"]["type"], "waitlist_promoted");
    assert!(
        n["data"]["booking_id"].as_str().unwrap().starts_with('b'),
        "{n}"
    );
    assert!(n["body"].as_str().unwrap().contains("候补成功"), "{n}");
    assert!(n["read_at"].is_null());
    assert_eq!(unread(&app, &b).await, 1);

    // Read it; another person cannot.
    let path = format!("/v1/me/notifications/{}/read", n["id"].as_str().unwrap());
    let r = app.call(Method::POST, &path, Some(&a), None, None).await;
    assert_eq!(r.status(), 404);
    let r = app.call(Method::POST, &path, Some(&b), None, None).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["read_at"].is_string());
    assert_eq!(unread(&app, &b).await, 0);
}

#[tokio::test]
async fn the_inbox_pages_newest_first_and_reads_all() {
    let (app, site, admin) = setup().await;
    let w = app.token_for("13700000311", Role::Worker, &[]).await;
    let mut events = Vec::new();
    for _ in 0..5 {
        let e = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 3})).await;
        book(&app, &e, &w, &e).await;
        events.push(e);
        app.clock.advance(Duration::from_secs(1));
    }
    let first = inbox(&app, &w, "?limit=2").await;
    let ids = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["data"]["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), [events[4].clone(), events[3].clone()]);
    // `cursor`/`next_cursor`, and their older names `before`/`next`.
    assert_eq!(first["next_cursor"], first["next"]);
    let second = inbox(
        &app,
        &w,
        &format!("?limit=2&cursor={}", first["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(ids(&second), [events[2].clone(), events[1].clone()]);
    let older = inbox(
        &app,
        &w,
        &format!("?limit=2&before={}", first["next"].as_str().unwrap()),
    )
    .await;
    assert_eq!(older, second);
    let last = inbox(
        &app,
        &w,
        &format!(
            "?limit=2&cursor={}",
            second["next_cursor"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(ids(&last), [events[0].clone()]);
    assert!(last["next_cursor"].is_null() && last["next"].is_null());
    let cursor = first["next_cursor"].as_str().unwrap();
    for bad in [
        "?limit=0".to_owned(),
        "?limit=101".to_owned(),
        "?before=x".to_owned(),
        "?cursor=x".to_owned(),
        format!("?cursor={cursor}&before=x"),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/me/notifications{bad}"),
                Some(&w),
                None,
                None,
            )
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = app
        .call(
            Method::POST,
            "/v1/me/notifications/read-all",
            Some(&w),
            None,
            None,
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["marked"], 5);
    assert_eq!(unread(&app, &w).await, 0);
}

/// An offered seat left unread goes by SMS after the fallback delay, once.
#[tokio::test]
async fn an_unread_offer_falls_back_to_sms_once() {
    let (app, site, admin) = setup().await;
    // Daytime in China, so quiet hours play no part here.
    app.move_to_china_time(10, 0);
    let event = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "offer_hours": 12}),
    )
    .await;
    let a = app.token_for("13700000321", Role::Worker, &[]).await;
    let b = app.token_for("13700000322", Role::Worker, &[]).await;
    let (_, first) = book(&app, &event, &a, "a").await;
    book(&app, &event, &b, "b").await;
    cancel(&app, &a, &first).await;
    assert_eq!(types(&inbox(&app, &b, "").await), ["seat_offered"]);
    let phone = "13700000322".parse().unwrap();
    app.clock.advance(Duration::from_secs(14 * 60));
    app.service.run_jobs().await.unwrap();
    assert!(app.sms.texts_to(&phone).is_empty(), "not yet");
    app.clock.advance(Duration::from_secs(61));
    let report = app.service.run_jobs().await.unwrap();
    assert_eq!(report.deliveries.sent, 1);
    let texts = app.sms.texts_to(&phone);
    assert_eq!(texts.len(), 1);
    assert!(texts[0].starts_with("【驿站】"), "{texts:?}");
    app.clock.advance(Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    assert_eq!(app.sms.texts_to(&phone).len(), 1, "once");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "yizhan_notification_deliveries_total{channel=\"sms\",outcome=\"sent\"} 1",
        "yizhan_notification_deliveries_total{channel=\"sms\",outcome=\"later\"} 1",
        "yizhan_outbox_pending 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// A cancellation at 22:30 waits for 07:00; one read meanwhile is not sent.
#[tokio::test]
async fn no_sms_in_quiet_hours_and_none_once_read() {
    let (app, site, admin) = setup().await;
    // Move to 22:30 China time.
    app.move_to_china_time(22, 30);
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 5})).await;
    let a = app.token_for("13700000331", Role::Worker, &[]).await;
    let b = app.token_for("13700000332", Role::Worker, &[]).await;
    book(&app, &event, &a, "a").await;
    book(&app, &event, &b, "b").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{event}"),
            Some(&admin),
            Some(json!({"status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    // B reads the news at once; A sleeps.
    let r = app
        .call(
            Method::POST,
            "/v1/me/notifications/read-all",
            Some(&b),
            None,
            None,
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["marked"], 2);
    let (pa, pb) = (
        "13700000331".parse().unwrap(),
        "13700000332".parse().unwrap(),
    );
    // 23:00: past the 15 minutes, but night.
    app.clock.advance(Duration::from_secs(30 * 60));
    app.service.run_jobs().await.unwrap();
    assert!(app.sms.texts_to(&pa).is_empty(), "quiet hours");
    // 07:00 the next morning.
    app.clock.advance(Duration::from_secs(8 * 3600));
    app.service.run_jobs().await.unwrap();
    assert_eq!(app.sms.texts_to(&pa).len(), 1);
    assert!(app.sms.texts_to(&pb).is_empty(), "read: no SMS");
}

/// A person's own quiet hours hold a text as they hold every channel: a
/// cancellation at 10:00 for someone quiet from 09:00 to 12:00 is texted at
/// 12:00, not after the fallback's 15 minutes.
#[tokio::test]
async fn a_persons_quiet_hours_hold_their_texts() {
    let (app, site, admin) = setup().await;
    app.move_to_china_time(10, 0);
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 5})).await;
    let quiet = app.token_for("13700000341", Role::Worker, &[]).await;
    let plain = app.token_for("13700000342", Role::Worker, &[]).await;
    book(&app, &event, &quiet, "q").await;
    book(&app, &event, &plain, "p").await;
    let r = app
        .call(
            Method::PUT,
            "/v1/me/notification-settings",
            Some(&quiet),
            Some(json!({"quiet_hours": {"from": "09:00", "to": "12:00"}})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{event}"),
            Some(&admin),
            Some(json!({"status": "cancelled"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let (pq, pp) = (
        "13700000341".parse().unwrap(),
        "13700000342".parse().unwrap(),
    );
    // 10:16: past the 15 minutes; the one without quiet hours is texted.
    app.clock.advance(Duration::from_secs(16 * 60));
    app.service.run_jobs().await.unwrap();
    assert_eq!(app.sms.texts_to(&pp).len(), 1);
    assert!(app.sms.texts_to(&pq).is_empty(), "in their quiet hours");
    // 12:00.
    app.clock.advance(Duration::from_secs(104 * 60));
    app.service.run_jobs().await.unwrap();
    assert_eq!(app.sms.texts_to(&pq).len(), 1);
}

/// A delivery claimed by a worker that died is taken up when its lease ends.
#[tokio::test]
async fn a_dead_workers_deliveries_are_taken_up_after_its_lease() {
    let (app, site, admin) = setup().await;
    app.move_to_china_time(10, 0);
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 5})).await;
    let a = app.token_for("13700000341", Role::Worker, &[]).await;
    book(&app, &event, &a, "a").await;
    app.call(
        Method::PATCH,
        &format!("/v1/events/{event}"),
        Some(&admin),
        Some(json!({"status": "cancelled"})),
        None,
    )
    .await;
    app.clock.advance(Duration::from_secs(16 * 60));
    // A worker claims the due SMS and dies before sending it.
    let store = app.service.state.store.clone();
    let at = app.clock_now();
    let claimed = store
        .claim_deliveries(at, at + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let pa = "13700000341".parse().unwrap();
    app.service.run_jobs().await.unwrap();
    assert!(app.sms.texts_to(&pa).is_empty(), "still leased");
    app.clock.advance(Duration::from_secs(61));
    app.service.run_jobs().await.unwrap();
    assert_eq!(app.sms.texts_to(&pa).len(), 1);
}

#[tokio::test]
async fn seat_holders_are_reminded_a_day_and_two_hours_before_once_each() {
    let (app, site, admin) = setup().await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 1})).await;
    let a = app.token_for("13700000351", Role::Worker, &[]).await;
    let b = app.token_for("13700000352", Role::Worker, &[]).await;
    book(&app, &event, &a, "a").await;
    book(&app, &event, &b, "b").await; // waitlisted: no reminder
    let reminders = |page: Value| {
        types(&page)
            .into_iter()
            .filter(|t| t == "event_reminder")
            .count()
    };
    // The event starts 10 days on; 23 hours before it, the day reminder.
    app.clock.advance(Duration::from_secs(9 * 86400 + 3600));
    assert_eq!(app.service.run_jobs().await.unwrap().reminded, 1);
    assert_eq!(app.service.run_jobs().await.unwrap().reminded, 0, "once");
    assert_eq!(reminders(inbox(&app, &a, "").await), 1);
    assert_eq!(reminders(inbox(&app, &b, "").await), 0);
    let n = &inbox(&app, &a, "").await["items"][0];
    assert!(n["body"].as_str().unwrap().contains("明天"), "{n}");
    // 1 h 59 min before: the two-hour reminder.
    app.clock.advance(Duration::from_secs(21 * 3600 + 60));
    assert_eq!(app.service.run_jobs().await.unwrap().reminded, 1);
    assert_eq!(reminders(inbox(&app, &a, "").await), 2);
}

#[tokio::test]
async fn followers_hear_when_a_site_closes_reopens_or_changes_hours() {
    let (app, site, admin) = setup().await;
    let fan = app.token_for("13700000361", Role::Worker, &[]).await;
    let other = app.token_for("13700000362", Role::Worker, &[]).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/sites/{site}/follow"),
            Some(&fan),
            None,
            None,
        )
        .await;
    assert!(r.status().is_success());
    let patch = |body: Value| {
        let app = &app;
        let (site, admin) = (site.clone(), admin.clone());
        async move {
            let etag = app.etag(&site).await;
            let r = app
                .call(
                    Method::PATCH,
                    &format!("/v1/sites/{site}"),
                    Some(&admin),
                    Some(body),
                    Some(&etag),
                )
                .await;
            assert_eq!(r.status(), 200);
            app.clock.advance(Duration::from_secs(1));
        }
    };
    patch(json!({"status": "temporarily_closed", "status_reason": "设备维修"})).await;
    patch(json!({"status": "open"})).await;
    patch(json!({"opening_hours": "Mo-Fr 08:00-18:00"})).await;
    patch(json!({"phone": "0531-88888888"})).await;
    let page = inbox(&app, &fan, "").await;
    assert_eq!(
        types(&page),
        ["site_hours_changed", "site_reopened", "site_closed"]
    );
    assert!(
        page["items"][2]["body"]
            .as_str()
            .unwrap()
            .contains("设备维修")
    );
    assert_eq!(page["items"][0]["url"], format!("/sites/{site}"));
    assert!(types(&inbox(&app, &other, "").await).is_empty());
}

#[tokio::test]
async fn moving_an_event_tells_its_holders_and_a_title_edit_does_not() {
    let (app, site, admin) = setup().await;
    let event = make_event(&app, &admin, &site, json!({"quotas": [], "capacity": 1})).await;
    let a = app.token_for("13700000371", Role::Worker, &[]).await;
    let b = app.token_for("13700000372", Role::Worker, &[]).await;
    book(&app, &event, &a, "a").await;
    book(&app, &event, &b, "b").await;
    let patch = |body: Value| {
        let (app, event, admin) = (&app, event.clone(), admin.clone());
        async move {
            let r = app
                .call(
                    Method::PATCH,
                    &format!("/v1/events/{event}"),
                    Some(&admin),
                    Some(body),
                    None,
                )
                .await;
            assert_eq!(r.status(), 200);
            app.clock.advance(Duration::from_secs(1));
        }
    };
    patch(json!({"title": "新标题"})).await;
    let later = app.clock_now() + chrono::Duration::days(12);
    patch(json!({
        "starts_at": later.to_rfc3339(),
        "ends_at": (later + chrono::Duration::hours(2)).to_rfc3339(),
        "booking_closes_at": later.to_rfc3339(),
    }))
    .await;
    assert_eq!(
        types(&inbox(&app, &a, "").await),
        ["event_changed", "booking_confirmed"]
    );
    // The waitlisted person hears of it too: their plans depend on it.
    assert_eq!(types(&inbox(&app, &b, "").await), ["event_changed"]);
}

/// An offer made at 22:30 and unread: no SMS at night when its deadline is
/// after 07:00 (it goes at 07:00); at once after the fallback delay when the
/// deadline falls before 07:00.
#[tokio::test]
async fn an_unread_offer_is_texted_at_night_only_when_it_ends_before_seven() {
    let (app, site, admin) = setup().await;
    app.move_to_china_time(22, 30);
    // Offers of 12 hours end at 10:30; of 4 hours, at 02:30.
    let long = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "offer_hours": 12}),
    )
    .await;
    let short = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "offer_hours": 4}),
    )
    .await;
    let holder = app.token_for("13700000381", Role::Worker, &[]).await;
    let w_long = app.token_for("13700000382", Role::Worker, &[]).await;
    let w_short = app.token_for("13700000383", Role::Worker, &[]).await;
    for (event, waiting) in [(&long, &w_long), (&short, &w_short)] {
        let (_, seat) = book(&app, event, &holder, &format!("h{event}")).await;
        book(&app, event, waiting, &format!("w{event}")).await;
        cancel(&app, &holder, &seat).await;
    }
    assert_eq!(types(&inbox(&app, &w_long, "").await), ["seat_offered"]);
    assert_eq!(types(&inbox(&app, &w_short, "").await), ["seat_offered"]);
    let (p_long, p_short) = (
        "13700000382".parse().unwrap(),
        "13700000383".parse().unwrap(),
    );
    // 22:46: past the 15 minutes, at night.
    app.clock.advance(Duration::from_secs(16 * 60));
    app.service.run_jobs().await.unwrap();
    assert!(
        app.sms.texts_to(&p_long).is_empty(),
        "quiet hours: its deadline is after 07:00"
    );
    assert_eq!(
        app.sms.texts_to(&p_short).len(),
        1,
        "it ends before 07:00: texted now"
    );
    // 07:00: the long offer's SMS goes.
    app.clock.advance(Duration::from_secs(8 * 3600 + 14 * 60));
    app.service.run_jobs().await.unwrap();
    assert_eq!(app.sms.texts_to(&p_long).len(), 1);
    assert_eq!(app.sms.texts_to(&p_short).len(), 1, "once");
}
