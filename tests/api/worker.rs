//! The worker decides what time decides: an offer lapses and its seat passes
//! on at its deadline, and no-shows are marked after the event — with no read
//! in between, and never twice when two processes work one database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::user::Role;

use crate::events::{book, make_event};
use crate::helpers::{
    TestApp, draft, second_node, site_and_admin, spawn_app, spawn_app_with_worker,
};

/// Wait until the background worker has finished `n` more passes than now:
/// then at least one whole pass began after this call.
async fn passes(app: &TestApp, n: u64) {
    let mut rx = app.service.worker.passes();
    let start = *rx.borrow_and_update();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|p| *p >= start + n))
        .await
        .expect("the worker keeps passing")
        .expect("the worker is running");
}

async fn status_of(app: &TestApp, token: &str, booking: &Value) -> String {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/bookings/{}", booking["id"].as_str().unwrap()),
            Some(token),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_lapses_offers_and_marks_no_shows_without_any_read() {
    let app = spawn_app_with_worker(
        vec![draft(
            1,
            yizhan::domain::site::Kind::UnionStation,
            36.65,
            117.12,
        )],
        Duration::from_millis(20),
    )
    .await;
    let (site, admin) = site_and_admin(&app).await;
    let event = make_event(
        &app,
        &admin,
        &site,
        json!({"kind": "recuperation", "quotas": [], "capacity": 2, "offer_hours": 1}),
    )
    .await;
    let mut people = Vec::new();
    for n in 0..4 {
        people.push(
            app.token_for(&format!("1370000010{n}"), Role::Worker, &[])
                .await,
        );
    }
    let mut bookings = Vec::new();
    for (i, p) in people.iter().enumerate() {
        bookings.push(book(&app, &event, p, &format!("k{i}")).await.1);
    }
    // A cancels: C is offered the seat for an hour.
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", bookings[0]["id"].as_str().unwrap()),
            Some(&people[0]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(status_of(&app, &people[2], &bookings[2]).await, "offered");

    // The hour passes; nobody reads; the worker lapses the offer and D is offered.
    app.clock.advance(Duration::from_secs(3601));
    passes(&app, 2).await;
    assert_eq!(status_of(&app, &people[2], &bookings[2]).await, "cancelled");
    assert_eq!(status_of(&app, &people[3], &bookings[3]).await, "offered");
    let r = app
        .call(
            Method::POST,
            &format!(
                "/v1/bookings/{}/accept",
                bookings[3]["id"].as_str().unwrap()
            ),
            Some(&people[3]),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);

    // The event ends; nobody checked in; the worker marks B and D no-shows.
    app.clock.advance(Duration::from_secs(11 * 86400));
    passes(&app, 2).await;
    assert_eq!(status_of(&app, &people[1], &bookings[1]).await, "no_show");
    assert_eq!(status_of(&app, &people[3], &bookings[3]).await, "no_show");
    let list = app
        .call(
            Method::GET,
            &format!("/v1/events/{event}/attendees"),
            Some(&admin),
            None,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let mut statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["cancelled", "cancelled", "no_show", "no_show"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_database_never_apply_a_job_twice() {
    let app = spawn_app(vec![draft(
        1,
        yizhan::domain::site::Kind::UnionStation,
        36.65,
        117.12,
    )])
    .await;
    let (site, admin) = site_and_admin(&app).await;
    // A second node on the same database, with the same clock.
    let other = second_node(&app).await;
    const EVENTS: usize = 12;
    for e in 0..EVENTS {
        let event = make_event(
            &app,
            &admin,
            &site,
            json!({"quotas": [], "capacity": 1, "offer_hours": 2}),
        )
        .await;
        let a = app
            .token_for(&format!("137100{e:05}"), Role::Worker, &[])
            .await;
        let b = app
            .token_for(&format!("137200{e:05}"), Role::Worker, &[])
            .await;
        let c = app
            .token_for(&format!("137300{e:05}"), Role::Worker, &[])
            .await;
        let (_, first) = book(&app, &event, &a, "a").await;
        book(&app, &event, &b, "b").await;
        book(&app, &event, &c, "c").await;
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
    }
    app.clock.advance(Duration::from_secs(3 * 3600));
    let (one, two) = tokio::join!(app.service.run_jobs(), other.run_jobs());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(
        one.offers_lapsed + two.offers_lapsed,
        EVENTS as u32,
        "each lapsed offer once: {one:?} {two:?}"
    );
    // Nothing is left to do for either.
    assert_eq!(app.service.run_jobs().await.unwrap().offers_lapsed, 0);
    assert_eq!(other.run_jobs().await.unwrap().offers_lapsed, 0);
}

#[tokio::test]
async fn reads_never_write() {
    let app = spawn_app(vec![draft(
        1,
        yizhan::domain::site::Kind::UnionStation,
        36.65,
        117.12,
    )])
    .await;
    let (site, admin) = site_and_admin(&app).await;
    let event = make_event(
        &app,
        &admin,
        &site,
        json!({"quotas": [], "capacity": 1, "offer_hours": 1}),
    )
    .await;
    let a = app.token_for("13700000201", Role::Worker, &[]).await;
    let b = app.token_for("13700000202", Role::Worker, &[]).await;
    let (_, first) = book(&app, &event, &a, "a").await;
    let (_, second) = book(&app, &event, &b, "b").await;
    app.call(
        Method::DELETE,
        &format!("/v1/bookings/{}", first["id"].as_str().unwrap()),
        Some(&a),
        None,
        None,
    )
    .await;
    app.clock.advance(Duration::from_secs(2 * 3600));
    // Past the deadline, reading the offer, my bookings and the attendees
    // leaves it as it was: the worker, not a read, lapses it.
    for _ in 0..2 {
        app.call(Method::GET, "/v1/me/bookings", Some(&b), None, None)
            .await;
        app.call(
            Method::GET,
            &format!("/v1/events/{event}/attendees"),
            Some(&admin),
            None,
            None,
        )
        .await;
        assert_eq!(status_of(&app, &b, &second).await, "offered");
    }
    assert_eq!(app.service.run_jobs().await.unwrap().offers_lapsed, 1);
    assert_eq!(status_of(&app, &b, &second).await, "cancelled");
}
