//! A failover as yizhan sees it, without Patroni (issue 28): the database
//! connections under a request die (`pg_terminate_backend`, as when the
//! primary is killed and HAProxy cuts its sessions). The request answers 503
//! with `Retry-After`, never 500; the pool drops the dead connections and the
//! retry with the same Idempotency-Key books, or replays what committed.
//! `scripts/ha` runs the real thing (Patroni, etcd, HAProxy, two nodes).
//!
//! PostgreSQL only: `YIZHAN_TEST_DATABASE=postgres pg_virtualenv -t -o fsync=off cargo test --test api failover`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yizhan::domain::site::Kind;
use yizhan::domain::user::Role;

use crate::helpers;

fn on_postgres() -> bool {
    std::env::var("YIZHAN_TEST_DATABASE").as_deref() == Ok("postgres")
}

async fn admin_connection() -> sqlx::PgConnection {
    use sqlx::Connection;
    let maintenance =
        helpers::postgres_url(&std::env::var("PGDATABASE").unwrap_or("postgres".into()));
    sqlx::PgConnection::connect(&maintenance).await.unwrap()
}

/// Cut every session of database `name` but `keep`'s; how many were cut.
async fn cut_sessions(admin: &mut sqlx::PgConnection, name: &str, keep: &[i32]) -> usize {
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> ALL($2) AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .bind(keep)
    .fetch_all(admin)
    .await
    .unwrap();
    cut.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_whose_connection_dies_answers_503_and_its_retry_books_once() {
    if !on_postgres() {
        eprintln!(
            "skipped: needs PostgreSQL (YIZHAN_TEST_DATABASE=postgres, as scripts/test sets it)"
        );
        return;
    }
    let app = helpers::spawn_app(vec![helpers::draft(1, Kind::MotherRoom, 36.6, 117.1)]).await;
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let worker = app.token_for("13700000001", Role::Worker, &[]).await;
    let now = app.clock_now();
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/events",
            Some(&admin),
            Some(json!({
                "kind": "training", "venue_name": "职工之家", "lat": 36.65, "lon": 117.12,
                "title": "技能培训", "capacity": 30,
                "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
                "ends_at": (now + chrono::Duration::days(11)).to_rfc3339(),
                "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            })),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let event = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id: yizhan::domain::event::EventId = event.parse().unwrap();
    let post = |key: &'static str| {
        app.client
            .post(app.url(&format!("/v1/events/{event}/bookings")))
            .bearer_auth(&worker)
            .header("idempotency-key", key)
            .json(&json!({}))
            .send()
    };

    // 1. The connection dies while the booking's transaction is open: it
    // waits for the event's row, which another session holds.
    let mut holder = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap()
    };
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE")
        .bind(id.as_i64())
        .execute(&mut holder)
        .await
        .unwrap();
    let mut admin_conn = admin_connection().await;
    let waiting = tokio::spawn(post("first"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&name)
        .fetch_one(&mut admin_conn)
        .await
        .unwrap();
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the booking never waited for the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cut_sessions(&mut admin_conn, &name, &[holder_pid]).await >= 1);
    let r = waiting.await.unwrap().unwrap();
    let status = r.status();
    let retry_after = r.headers().get("retry-after").cloned();
    let body = r.text().await.unwrap();
    assert_eq!(status, 503, "a dead connection is 503, never 500: {body}");
    assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

    // The retry with the same key books: nothing of the first attempt stayed.
    let r = post("first").await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let booked: Value = r.json().await.unwrap();

    // 2. The answer is lost with every connection (the pool holds only dead
    // ones now): the pool drops them, and the same request replays the booking.
    assert!(cut_sessions(&mut admin_conn, &name, &[holder_pid]).await >= 1);
    let r = post("first").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let replayed: Value = r.json().await.unwrap();
    assert_eq!(replayed["id"], booked["id"]);

    // 3. Cut again: reads answer too, and readiness holds without a restart.
    assert!(cut_sessions(&mut admin_conn, &name, &[holder_pid]).await >= 1);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let mine = app
        .call(
            reqwest::Method::GET,
            "/v1/me/bookings",
            Some(&worker),
            None,
            None,
        )
        .await;
    assert_eq!(mine.status(), 200);
    let mine: Value = mine.json().await.unwrap();
    let text = mine.to_string();
    assert_eq!(
        text.matches(booked["id"].as_str().unwrap()).count(),
        1,
        "one booking: {text}"
    );

    // Exactly one booking row, one key, one confirmation notice.
    let count = |sql: &'static str| {
        let url = app.database_url.clone();
        async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) FROM bookings").await, 1);
    assert_eq!(
        count("SELECT count(*) FROM idempotency WHERE key = 'first'").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM notifications WHERE type = 'booking_confirmed'").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_of_a_write_runs_without_a_statement_timeout() {
    if !on_postgres() {
        eprintln!(
            "skipped: needs PostgreSQL (YIZHAN_TEST_DATABASE=postgres, as scripts/test sets it)"
        );
        return;
    }
    // With synchronous replication the COMMIT waits for the standby, and a
    // cancelled wait (statement_timeout) reports success for a commit no
    // standby has. A deferred trigger runs inside COMMIT: it records the
    // statement bound the COMMIT runs under.
    let db = helpers::fresh_postgres_database().await;
    let opts = yizhan::store::DbOptions {
        statement_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let store = yizhan::store::connect_with(&db.url, &opts).await.unwrap();
    let mut c = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&db.url).await.unwrap()
    };
    for sql in [
        "CREATE TABLE commit_bound (at_commit text NOT NULL)",
        "CREATE FUNCTION record_bound() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN INSERT INTO commit_bound \
         VALUES (current_setting('statement_timeout')); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER record_bound AFTER INSERT ON idempotency \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_bound()",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let record = yizhan::domain::idempotency::IdempotencyRecord {
        request_hash: "h".into(),
        body: "{}".into(),
        created_at: chrono::Utc::now(),
    };
    let mut tx = store.begin().await.unwrap();
    let r = tx
        .insert_booked(&[], &[(1, "bounded".into(), record)])
        .await;
    assert!(r.is_ok(), "{r:?}");
    let r = tx.commit().await;
    assert!(r.is_ok(), "{r:?}");
    let bound: String = sqlx::query_scalar("SELECT at_commit FROM commit_bound")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(bound, "0", "the COMMIT ran under a statement bound");
}
