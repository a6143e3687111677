//! `GET /v1/events/{id}/attendees` for an event with 10,000 bookings (5,000
//! confirmed, 5,000 waitlisted), over real HTTP on loopback against a SQLite
//! file: the managers' console's main page. Target: ≤ 100 ms.
//!
//! Run: `cargo bench --bench attendees`.

use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use yizhan::domain::user::Role;
use yizhan::service::{Service, serve};
use yizhan::store::{self, BookRequest, Commands};

mod support;
use support::event;

const BOOKINGS: usize = 10_000;
const CAPACITY: u32 = 5_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("bench.db").display());
    let (addr, token, event, _service) = rt.block_on(async {
        let store = store::connect(&url).await.unwrap();
        let admin = store
            .put_user(
                &"13900000000".parse().unwrap(),
                Role::Admin,
                &[],
                Utc::now(),
            )
            .await
            .unwrap();
        let token = yizhan::auth::new_token();
        store
            .create_token(
                admin.id,
                &yizhan::auth::token_hash(&token),
                Utc::now() + chrono::Duration::days(1),
            )
            .await
            .unwrap();
        let event = store
            .create_event(event(CAPACITY), None, Utc::now())
            .await
            .unwrap();
        let mut users = Vec::with_capacity(BOOKINGS);
        for i in 0..BOOKINGS {
            let phone = format!("137{i:08}").parse().unwrap();
            users.push(
                store
                    .put_user(&phone, Role::Worker, &[], Utc::now())
                    .await
                    .unwrap(),
            );
        }
        for u in &users {
            store
                .book(BookRequest {
                    user: u,
                    event: event.id,
                    key: None,
                    request_hash: "h",
                    at: Utc::now(),
                })
                .await
                .unwrap();
        }
        let service = Service::with_store(store, Duration::from_secs(3600))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = service.state.clone();
        tokio::spawn(async move {
            serve(listener, state, std::future::pending())
                .await
                .unwrap();
        });
        (addr, token, event.id, service)
    });
    yizhan::push::install_tls_provider();
    let client = reqwest::Client::new();
    let get = |csv: bool| {
        let url = format!(
            "http://{addr}/v1/events/{event}/attendees{}",
            if csv { "?format=csv" } else { "" }
        );
        let (client, token) = (client.clone(), token.clone());
        async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        }
    };
    let body = rt.block_on(get(false));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), BOOKINGS);
    println!(
        "attendees JSON: {} bytes for {BOOKINGS} bookings",
        body.len()
    );
    let mut g = c.benchmark_group("attendees_http");
    g.sample_size(20);
    g.bench_function("json_10000_bookings", |b| {
        b.iter(|| rt.block_on(get(false)))
    });
    g.bench_function("csv_10000_bookings", |b| b.iter(|| rt.block_on(get(true))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
