//! Web Push deliveries per second: 2,000 notifications, each to its own
//! subscribed browser, through the whole delivery path — claimed from the
//! outbox, encrypted (RFC 8291 aes128gcm), signed (VAPID, a token per push
//! service cached), posted over loopback HTTP to a push-service stand-in that
//! answers 201, and recorded (group commits). Beside it, the encryption of
//! one payload alone, the floor of that path.
//!
//! On SQLite always; on PostgreSQL too when one is given
//! (`YIZHAN_BENCH_PG_URL`, or under `pg_virtualenv`, as `benches/booking.rs`).
//!
//! Run: `cargo bench --bench push`. Criterion reports the time per 2,000
//! deliveries and the throughput in elements (notifications) per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use yizhan::auth::SystemClock;
use yizhan::domain::booking::Effect;
use yizhan::domain::notify::{Notice, NoticeType};
use yizhan::domain::push::{b64url, validate_subscription};
use yizhan::domain::user::{Role, UserId};
use yizhan::metrics::Metrics;
use yizhan::notify::Deliverer;
use yizhan::push::{PushChannel, PushConfig};
use yizhan::store::{self, DynStore};

mod support;
use support::postgres_url;

const NOTIFICATIONS: usize = 2_000;

/// A push service that takes every message (201), on loopback.
async fn stand_in() -> String {
    let app = axum::Router::new().route(
        "/push/{id}",
        post(|body: axum::body::Bytes| async move {
            // An aes128gcm body: a 86-byte header, then the record.
            if body.len() > 86 {
                axum::http::StatusCode::CREATED
            } else {
                axum::http::StatusCode::BAD_REQUEST
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A browser's public key and auth secret; every subscription shares them
/// (a P-256 key pair made as the server makes its own).
fn browser_key() -> (String, String) {
    let key = yizhan::push::VapidKey::generate();
    (
        key.public_key().to_owned(),
        b64url(&rand::random::<[u8; 16]>()),
    )
}

fn notice(user: UserId, i: usize) -> Notice {
    let now = Utc::now();
    Notice {
        user,
        at: now,
        kind: NoticeType::BookingConfirmed,
        title: "电工技能培训".into(),
        body: format!("报名成功：「电工技能培训」将于12月02日 09:30开始。（{i}）"),
        url: "/events/e1".into(),
        data: serde_json::json!({"event_id": "e1"}),
        expires_at: Some(now + chrono::Duration::days(10)),
        topic: Some(format!("e1-b{i}")),
    }
}

/// Queue one notification per person (not measured).
async fn queue(store: &DynStore, users: &[UserId]) {
    let effects: Vec<Effect> = users
        .iter()
        .enumerate()
        .map(|(i, u)| Effect::Notify(notice(*u, i)))
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.apply(&effects).await.unwrap();
    tx.commit().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    yizhan::push::install_tls_provider();
    let base = rt.block_on(stand_in());

    let mut g = c.benchmark_group("push_encrypt");
    let (p256dh, auth) = browser_key();
    let sub = validate_subscription("https://push.example/x", &p256dh, &auth, None, false).unwrap();
    let key = p256::PublicKey::from_sec1_bytes(&sub.p256dh).unwrap();
    let mut secret = web_push_native::Auth::default();
    secret.copy_from_slice(&sub.auth);
    let payload = yizhan::domain::push::payload(
        "n1",
        NoticeType::BookingConfirmed,
        "电工技能培训",
        &notice(1, 0).body,
        "/events/e1",
    );
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_payload", |b| {
        b.iter(|| web_push_native::encrypt(payload.clone(), &key, &secret).unwrap())
    });
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("bench.db").display());
    bench_backend(c, &rt, "push_sqlite", &sqlite, &base);
    match rt.block_on(postgres_url()) {
        Some(url) => bench_backend(c, &rt, "push_postgres", &url, &base),
        None => {
            eprintln!("PostgreSQL rows skipped: set YIZHAN_BENCH_PG_URL or run under pg_virtualenv")
        }
    }
}

fn bench_backend(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    url: &str,
    base: &str,
) {
    let (store, users) = rt.block_on(async {
        let store = store::connect(url).await.unwrap();
        let (p256dh, auth) = browser_key();
        let mut users = Vec::with_capacity(NOTIFICATIONS);
        for i in 0..NOTIFICATIONS {
            let phone = format!("137{i:08}").parse().unwrap();
            let u = store
                .put_user(&phone, Role::Worker, &[], Utc::now())
                .await
                .unwrap();
            let sub =
                validate_subscription(&format!("{base}/push/{i}"), &p256dh, &auth, None, true)
                    .unwrap();
            store
                .add_subscription(u.id, &sub, Utc::now())
                .await
                .unwrap();
            users.push(u.id);
        }
        (store, users)
    });
    let deliverer = Deliverer {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        channels: vec![Arc::new(
            PushChannel::new(PushConfig::ephemeral(true)).unwrap(),
        )],
        metrics: Arc::new(Metrics::default()),
        lease: yizhan::notify::LEASE,
    };
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.throughput(Throughput::Elements(NOTIFICATIONS as u64));
    g.bench_function("deliver_2000_to_loopback", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    queue(&store, &users).await;
                    let started = Instant::now();
                    let report = deliverer.deliver_due().await.unwrap();
                    total += started.elapsed();
                    assert_eq!(report.sent as usize, NOTIFICATIONS, "{report:?}");
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
