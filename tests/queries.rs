//! `GET /v1/events/{id}/attendees` costs the same number of database
//! statements for an event of 10 bookings as for one of 600: the count of
//! sqlx's per-statement events (target `sqlx::query`), caught by a global
//! subscriber (SQLite runs statements on its own threads).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::json;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use yizhan::domain::user::Role;
use yizhan::store::{BookRequest, Commands};

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

struct CountQueries(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for CountQueries {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendees_take_a_constant_number_of_queries() {
    let count = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(CountQueries(count.clone())),
    )
    .expect("the only subscriber of this test binary");

    let app = helpers::spawn_app(vec![helpers::draft(
        1,
        yizhan::domain::site::Kind::UnionStation,
        36.65,
        117.12,
    )])
    .await;
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let store = app.service.state.store.clone();
    let now = app.clock_now();
    let event = |capacity: u32| {
        json!({
            "kind": "training", "venue_name": "职工之家", "lat": 36.65, "lon": 117.12,
            "title": "技能培训", "capacity": capacity,
            "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::days(11)).to_rfc3339(),
            "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        })
    };
    let mut queries = Vec::new();
    let mut phone = 0;
    for (capacity, bookings) in [(5u32, 10usize), (300, 600)] {
        let r = app
            .call(
                Method::POST,
                "/v1/events",
                Some(&admin),
                Some(event(capacity)),
                None,
            )
            .await;
        assert_eq!(r.status(), 201);
        let id: yizhan::domain::event::EventId = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        for _ in 0..bookings {
            phone += 1;
            let user = store
                .put_user(
                    &format!("137{phone:08}").parse().unwrap(),
                    Role::Worker,
                    &[],
                    now,
                )
                .await
                .unwrap();
            store
                .book(BookRequest {
                    user: &user,
                    event: id,
                    key: None,
                    request_hash: "h",
                    at: now,
                })
                .await
                .unwrap();
        }
        let before = count.load(Ordering::SeqCst);
        // The whole list (a page is cut from it): the CSV.
        let r = app
            .call(
                Method::GET,
                &format!("/v1/events/{id}/attendees.csv"),
                Some(&admin),
                None,
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        queries.push(count.load(Ordering::SeqCst) - before);
        let rows: Vec<&str> = body.lines().skip(1).collect();
        assert_eq!(rows.len(), bookings);
        assert_eq!(
            rows.iter().filter(|r| r.contains(",waitlisted,")).count(),
            bookings - capacity as usize
        );
    }
    assert!(
        queries[0] > 0,
        "the counter sees the statements: {queries:?}"
    );
    assert_eq!(queries[0], queries[1], "10 and 600 bookings: {queries:?}");
    assert!(queries[1] <= 8, "a handful of statements: {queries:?}");
}
