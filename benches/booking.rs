//! Booking attempts per second through the store: 2,000 attempts by distinct
//! people, 64 in flight, on one hot event (30 seats and a waitlist) and spread
//! over 1,000 events, each attempt its own transaction; and the hot event's
//! 2,000 through the writer with 512 in flight (group commit: bench/crowd's
//! crowd without HTTP). Each attempt carries an Idempotency-Key.
//!
//! On SQLite (the embedded default, WAL, `synchronous = FULL`) always, and on
//! PostgreSQL beside it when one is given: `YIZHAN_BENCH_PG_URL=postgres://…`
//! (a database of its own: the bench writes into it), or libpq's `PGHOST`
//! and friends, as under `pg_virtualenv` (a fresh database is created).
//!
//! Run: `cargo bench --bench booking`, or
//! `pg_virtualenv cargo bench --bench booking` for both. Criterion reports the
//! time per 2,000 attempts and the throughput in elements (attempts) per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use yizhan::domain::event::EventId;
use yizhan::domain::user::{Profile, Role, User};
use yizhan::store::{self, BookRequest, Commands};

mod support;
use support::{event, postgres_url};

const ATTEMPTS: usize = 2_000;
const IN_FLIGHT: usize = 64;
/// In flight through the writer, as bench/crowd's client keeps them.
const CROWD_IN_FLIGHT: usize = 512;

/// Who runs the attempts: the store (a transaction each) or the writer.
enum Runner {
    Store,
    Writer(store::Writer),
}

/// Each run's keys are new: a key seen before would be a replay, not a booking.
static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `attempts` booking attempts, `in_flight` at a time, through `commands`: the
/// store itself (a transaction each) or the writer (group commit).
async fn run<C: Commands + Clone + Send + 'static>(
    commands: &C,
    users: &Arc<Vec<User>>,
    events: &[EventId],
    attempts: usize,
    in_flight: usize,
) -> Duration {
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (commands, users, next, events) = (
            commands.clone(),
            users.clone(),
            next.clone(),
            events.to_vec(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= attempts {
                    break;
                }
                let key = format!("k{run}-{i}");
                let booked = commands
                    .book(BookRequest {
                        user: &users[i],
                        event: events[i % events.len()],
                        key: Some(&key),
                        request_hash: "h",
                        at: Utc::now(),
                    })
                    .await
                    .expect("booking attempt");
                std::hint::black_box(booked);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("bench.db").display());
    bench_backend(c, &rt, "booking_sqlite", &sqlite);
    match rt.block_on(postgres_url()) {
        Some(url) => bench_backend(c, &rt, "booking_postgres", &url),
        None => {
            eprintln!("PostgreSQL rows skipped: set YIZHAN_BENCH_PG_URL or run under pg_virtualenv")
        }
    }
}

fn bench_backend(c: &mut Criterion, rt: &tokio::runtime::Runtime, group: &str, url: &str) {
    let (store, users) = rt.block_on(async {
        let store = store::connect(url).await.unwrap();
        let mut users = Vec::with_capacity(ATTEMPTS);
        for i in 0..ATTEMPTS {
            let phone = format!("137{i:08}").parse().unwrap();
            let mut u = store
                .put_user(&phone, Role::Worker, &[], Utc::now())
                .await
                .unwrap();
            u.profile = Profile::default();
            users.push(u);
        }
        (store, Arc::new(users))
    });
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.throughput(Throughput::Elements(ATTEMPTS as u64));
    // One hot event: attempts through `commands`, `in_flight` at a time.
    let one_hot = |b: &mut criterion::Bencher, commands: &dyn Fn() -> Runner, in_flight| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let e = store
                        .create_event(event(30), None, Utc::now())
                        .await
                        .unwrap();
                    total += match commands() {
                        Runner::Store => run(&store, &users, &[e.id], ATTEMPTS, in_flight).await,
                        Runner::Writer(w) => run(&w, &users, &[e.id], ATTEMPTS, in_flight).await,
                    };
                }
                total
            })
        })
    };
    g.bench_function("one_hot_event_2000_attempts", |b| {
        one_hot(b, &|| Runner::Store, IN_FLIGHT)
    });
    // The crowd of bench/crowd without HTTP: what the writer alone does
    // with many waiting (group commit).
    let writer = rt.block_on(async { store::Writer::start(store.clone()) });
    g.bench_function("writer_one_hot_event_2000_attempts_512_in_flight", |b| {
        one_hot(b, &|| Runner::Writer(writer.clone()), CROWD_IN_FLIGHT)
    });
    g.bench_function("1000_events_2000_attempts", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut events = Vec::with_capacity(1000);
                    for _ in 0..1000 {
                        events.push(
                            store
                                .create_event(event(30), None, Utc::now())
                                .await
                                .unwrap()
                                .id,
                        );
                    }
                    total += run(&store, &users, &events, ATTEMPTS, IN_FLIGHT).await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
