//! Several nodes on one database.
//!
//! - The change feed never skips a change while several writers commit at
//!   once through their own connections (every backend). With positions from
//!   a sequence instead of the commit-ordered counter — even with `nextval`
//!   as the transaction's last statement — it failed in every run tried on
//!   PostgreSQL (2 to 33 changes skipped for ever).
//! - Two `yizhan serve` processes on one PostgreSQL database: they seed the
//!   registry exactly once between them, an edit made through one reaches the
//!   other's index within a second, and a node whose database connections are
//!   cut catches up once they are back.
//! - One 30-seat event booked through both nodes by 500 people at once, each
//!   request sent to both nodes: exactly 30 confirmed, waitlist 1..470, every
//!   retry replayed.
//!
//! The two-process tests need PostgreSQL (`YIZHAN_TEST_DATABASE=postgres`,
//! which `scripts/test` sets under `pg_virtualenv`); on SQLite they say they
//! were skipped.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yizhan::domain::site::Kind;
use yizhan::domain::user::{Phone, Role};
use yizhan::store::{self, DynStore};

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

fn on_postgres() -> bool {
    std::env::var("YIZHAN_TEST_DATABASE").as_deref() == Ok("postgres")
}

macro_rules! postgres_only {
    () => {
        if !on_postgres() {
            eprintln!(
                "skipped: needs PostgreSQL (YIZHAN_TEST_DATABASE=postgres, as scripts/test sets it)"
            );
            return;
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_never_skips_a_change_under_concurrent_writers() {
    const WRITERS: usize = 6;
    const ROUNDS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let db = helpers::test_database_url(&dir).await;
    let reader = store::connect(&db.url).await.unwrap();
    // Each writer has its own store (its own connections), as another node would.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let url = db.url.clone();
        writers.spawn(async move {
            let store = store::connect(&url).await.unwrap();
            for round in 0..ROUNDS {
                // A batch of 1–3 sites: new ones first, then edits of the same refs.
                let batch = (0..1 + round % 3)
                    .map(|j| {
                        let n = w * 1000 + (round + j) % 12;
                        let mut d =
                            helpers::draft(n, Kind::MotherRoom, 36.6, 117.0 + w as f64 * 0.01);
                        d.name = format!("站点{n} 第{round}版");
                        d
                    })
                    .collect();
                store.import_sites(batch, chrono::Utc::now()).await.unwrap();
            }
        });
    }
    // The reader pages through the feed as fast as it can while they write.
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let done = writers.is_empty() || {
            while let Some(r) = writers.try_join_next() {
                r.unwrap();
            }
            writers.is_empty()
        };
        loop {
            let page = reader.changes_since(cursor, 7).await.unwrap();
            pages += 1;
            let Some(last) = page.last() else { break };
            for c in &page {
                assert!(c.seq > cursor, "positions only grow");
                seen.insert(c.seq);
            }
            cursor = last.seq;
        }
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    let all: BTreeSet<i64> = reader
        .changes_since(0, 1_000_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert!(all.len() >= WRITERS * ROUNDS, "{} changes", all.len());
    let missed: Vec<_> = all.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "the reader skipped {} change(s) for ever, e.g. {:?} ({pages} pages)",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    assert_eq!(reader.last_change_seq().await.unwrap(), cursor);
}

/// A `yizhan serve` process on port 0, its log kept; killed if the test panics.
struct Node {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    /// Its working directory, its own as on a machine of its own.
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Start a node named `name` (its connections' `application_name`).
    fn start(url: &str, name: &str, args: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_yizhan"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
            .args(args)
            .current_dir(dir.path())
            .env("PGAPPNAME", name);
        let (child, addr, log) = helpers::spawn_serve(cmd, Duration::from_secs(180));
        Node {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGTERM, and the process must exit 0 having drained.
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

async fn token_for(store: &DynStore, phone: &str, role: Role) -> String {
    let phone: Phone = phone.parse().unwrap();
    let now = chrono::Utc::now();
    let user = store.put_user(&phone, role, &[], now).await.unwrap();
    let token = yizhan::auth::new_token();
    store
        .create_token(
            user.id,
            &yizhan::auth::token_hash(&token),
            now + chrono::Duration::days(1),
        )
        .await
        .unwrap();
    token
}

async fn site_hours(client: &reqwest::Client, node: &Node, id: &str) -> String {
    let r = client
        .get(node.url(&format!("/v1/sites/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["opening_hours"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Edit a site's hours through `node` as `admin`.
async fn set_hours(client: &reqwest::Client, node: &Node, admin: &str, id: &str, hours: &str) {
    let r = client
        .get(node.url(&format!("/v1/sites/{id}")))
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = client
        .patch(node.url(&format!("/v1/sites/{id}")))
        .bearer_auth(admin)
        .header("if-match", etag)
        .json(&json!({"opening_hours": hours}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// How long until `node` shows `hours` for the site (panics past `bound`).
async fn until_shown(
    client: &reqwest::Client,
    node: &Node,
    id: &str,
    hours: &str,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if site_hours(client, node, id).await == hours {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "the edit did not reach the other node within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_seed_once_stay_in_step_and_catch_up_after_a_cut() {
    postgres_only!();
    let db = helpers::fresh_postgres_database().await;
    // Both start at once on the empty database: migrations and the seed race.
    let (a, b) = {
        let (u1, u2) = (db.url.clone(), db.url.clone());
        let a = std::thread::spawn(move || Node::start(&u1, "yizhan-node-a", &[]));
        let b = std::thread::spawn(move || {
            // A poll interval far beyond the bounds below: only the wake-ups count.
            Node::start(&u2, "yizhan-node-b", &["--follow-interval", "60"])
        });
        (a.join().unwrap(), b.join().unwrap())
    };
    let store = store::connect(&db.url).await.unwrap();
    let sites = store.count_sites().await.unwrap();
    assert_eq!(sites, 12_759, "the shipped dataset, once");
    assert_eq!(
        store.changes_since(0, 100_000).await.unwrap().len() as u64,
        sites,
        "one feed entry per site: seeded exactly once"
    );
    let seeded = [&a, &b]
        .iter()
        .filter(|n| {
            n.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("seeded the empty registry"))
        })
        .count();
    assert_eq!(seeded, 1, "exactly one node seeds");

    yizhan::push::install_tls_provider();
    let client = reqwest::Client::new();
    for n in [&a, &b] {
        let ready: Value = client
            .get(n.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["sites"], 12_759);
    }
    // Started bare at the same moment, each in its own directory, both serve
    // the database's VAPID key: a browser's subscription works on either.
    let mut keys = Vec::new();
    for n in [&a, &b] {
        let key: Value = client
            .get(n.url("/v1/push/vapid-public-key"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(key["public_key"].as_str().unwrap().to_owned());
    }
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0].len(), 87, "a 65-byte point in base64url");
    let admin = token_for(&store, "13600000000", Role::Admin).await;
    let near: Value = client
        .get(a.url("/v1/sites/nearby?lat=36.65&lon=117.12&k=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = near["items"][0]["id"].as_str().unwrap().to_owned();

    // An edit through A is on B within a second.
    set_hours(&client, &a, &admin, &id, "Mo-Su 06:00-23:00").await;
    let took = until_shown(
        &client,
        &b,
        &id,
        "Mo-Su 06:00-23:00",
        Duration::from_secs(1),
    )
    .await;
    eprintln!("edit through A shown by B after {took:?}");

    // Cut every connection of B; edit through A meanwhile; B catches up.
    let mut admin_conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&db.url).await.unwrap()
    };
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind("yizhan-node-b")
    .fetch_all(&mut admin_conn)
    .await
    .unwrap();
    assert!(cut.len() >= 2, "B's pool and listener: {cut:?}");
    set_hours(&client, &a, &admin, &id, "Mo-Fr 07:00-19:00").await;
    let took = until_shown(
        &client,
        &b,
        &id,
        "Mo-Fr 07:00-19:00",
        Duration::from_secs(5),
    )
    .await;
    eprintln!("after the cut, B caught up in {took:?}");
    let r = client.get(b.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "B is ready again without a restart");
    // And the wake-ups work again after the reconnect.
    set_hours(&client, &a, &admin, &id, "Mo-Su 08:00-20:00").await;
    until_shown(
        &client,
        &b,
        &id,
        "Mo-Su 08:00-20:00",
        Duration::from_secs(1),
    )
    .await;
    a.stop();
    b.stop();
}

/// One booking request; 503s are retried (same key) after `Retry-After`.
async fn book(
    client: &reqwest::Client,
    node: &Node,
    event: &str,
    token: &str,
    key: &str,
) -> (u16, bool, Value, u32) {
    let mut busy = 0;
    loop {
        let r = client
            .post(node.url(&format!("/v1/events/{event}/bookings")))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&json!({}))
            .send()
            .await
            .expect("sent");
        let status = r.status().as_u16();
        assert!(
            status < 500 || status == 503,
            "a 5xx other than 503: {status}"
        );
        if status == 503 {
            assert!(
                r.headers().contains_key("retry-after"),
                "503 without Retry-After"
            );
            busy += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let replayed = r.headers().get("idempotent-replayed").is_some();
        return (
            status,
            replayed,
            r.json().await.unwrap_or(Value::Null),
            busy,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_people_book_one_event_through_two_nodes() {
    postgres_only!();
    let db = helpers::fresh_postgres_database().await;
    let a = Node::start(&db.url, "yizhan-book-a", &["--no-seed"]);
    let b = Node::start(&db.url, "yizhan-book-b", &["--no-seed"]);
    let nodes = Arc::new([a, b]);
    let store = store::connect(&db.url).await.unwrap();
    let admin = token_for(&store, "13600000000", Role::Admin).await;
    let mut tokens = Vec::with_capacity(500);
    for i in 0..500 {
        tokens.push(token_for(&store, &format!("137{i:08}"), Role::Worker).await);
    }
    yizhan::push::install_tls_provider();
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let r = client
        .post(nodes[0].url("/v1/events"))
        .bearer_auth(&admin)
        .json(&json!({
            "kind": "training", "venue_name": "职工之家", "lat": 36.65, "lon": 117.12,
            "title": "技能培训", "capacity": 30, "waitlist": true,
            "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::days(11)).to_rfc3339(),
            "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let event = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Everyone at once, each request sent to both nodes concurrently (a
    // client retrying on another node before the first answer came back).
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        for node in [i % 2, 1 - i % 2] {
            let (client, nodes, event, token) =
                (client.clone(), nodes.clone(), event.clone(), token.clone());
            tasks.spawn(async move {
                (
                    i,
                    book(&client, &nodes[node], &event, &token, &format!("k-{i}")).await,
                )
            });
        }
    }
    let mut answers: HashMap<usize, Vec<(u16, bool, Value, u32)>> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (i, got) = r.unwrap();
        answers.entry(i).or_default().push(got);
    }
    let took = started.elapsed();
    let busy: u32 = answers.values().flatten().map(|a| a.3).sum();
    eprintln!("1,000 requests through two nodes in {took:?}; {busy} answered 503 and were retried");

    let mut confirmed = 0;
    let mut positions = Vec::new();
    for (i, got) in &answers {
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 201, "person {i}: {:?}", got[0].2);
        assert_eq!(
            (got[0].0, &got[0].2),
            (got[1].0, &got[1].2),
            "person {i}: one answer"
        );
        assert_eq!(
            got.iter().filter(|g| g.1).count(),
            1,
            "person {i}: one decided, the other replayed"
        );
        match got[0].2["status"].as_str().unwrap() {
            "confirmed" => confirmed += 1,
            "waitlisted" => positions.push(got[0].2["waitlist_position"].as_u64().unwrap()),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(answers.len(), 500);
    assert_eq!(confirmed, 30);
    positions.sort_unstable();
    assert_eq!(positions, (1..=470).collect::<Vec<u64>>());

    // Every later retry, on either node, is replayed to the byte.
    for (i, token) in tokens.iter().enumerate() {
        let (status, replayed, body, _) = book(
            &client,
            &nodes[(i + 1) % 2],
            &event,
            token,
            &format!("k-{i}"),
        )
        .await;
        assert!(replayed, "person {i}");
        assert_eq!((status, &body), (answers[&i][0].0, &answers[&i][0].2));
    }
    let ev: Value = client
        .get(nodes[1].url(&format!("/v1/events/{event}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ev["seats_left"], 0);
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_past_the_bound_is_503_with_retry_after_never_500() {
    postgres_only!();
    let db = helpers::fresh_postgres_database().await;
    let node = Node::start(
        &db.url,
        "yizhan-lock",
        &["--no-seed", "--db-lock-timeout", "0.3"],
    );
    let store = store::connect(&db.url).await.unwrap();
    let admin = token_for(&store, "13600000000", Role::Admin).await;
    let worker = token_for(&store, "13700000001", Role::Worker).await;
    yizhan::push::install_tls_provider();
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let r = client
        .post(node.url("/v1/events"))
        .bearer_auth(&admin)
        .json(&json!({
            "kind": "training", "venue_name": "职工之家", "lat": 36.65, "lon": 117.12,
            "title": "技能培训", "capacity": 30,
            "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::days(11)).to_rfc3339(),
            "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let event = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id: yizhan::domain::event::EventId = event.parse().unwrap();

    // Someone else holds the event's row (a long command on another node).
    let mut holder = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&db.url).await.unwrap()
    };
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE")
        .bind(id.as_i64())
        .execute(&mut holder)
        .await
        .unwrap();
    let post = || {
        client
            .post(node.url(&format!("/v1/events/{event}/bookings")))
            .bearer_auth(&worker)
            .header("idempotency-key", "one")
            .json(&json!({}))
            .send()
    };
    let started = Instant::now();
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "a problem, like every error"
    );
    // The lock goes; the retry books (nothing of the refused attempt remained).
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let r = post().await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_without_the_database_or_with_migrations_pending_and_recovers() {
    postgres_only!();
    let app = helpers::spawn_app(vec![helpers::draft(1, Kind::MotherRoom, 36.6, 117.1)]).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin = {
        use sqlx::Connection;
        let maintenance =
            helpers::postgres_url(&std::env::var("PGDATABASE").unwrap_or("postgres".into()));
        sqlx::PgConnection::connect(&maintenance).await.unwrap()
    };
    let exec = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));

    // The database goes away: no new connections, the open ones cut.
    exec(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    exec(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let started = Instant::now();
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Site reads never touch the database: they still serve.
    assert_eq!(
        app.get("/v1/sites/nearby?lat=36.6&lon=117.1")
            .await
            .status(),
        200
    );
    // It comes back: ready again, without a restart.
    exec(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);

    // The database is behind this build's migrations (restored from an old
    // backup, say): not ready until they are applied.
    let mut conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap()
    };
    sqlx::query("UPDATE _sqlx_migrations SET success = false")
        .execute(&mut conn)
        .await
        .unwrap();
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 503);
    sqlx::query("UPDATE _sqlx_migrations SET success = true")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
}

/// Behind PgBouncer in transaction mode the pooled queries go to the pooler's
/// URL while migrations and the change listener keep their own direct
/// sessions: each kind of connection uses the URL it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_queries_and_the_listener_use_their_own_urls() {
    postgres_only!();
    use sqlx::Connection;
    let db = helpers::fresh_postgres_database().await;
    let direct = format!("{}?application_name=yizhan-direct", db.url);
    let pooled = format!("{}?application_name=yizhan-pooled", db.url);
    let opts = store::DbOptions {
        pool_url: Some(pooled),
        ..store::DbOptions::default()
    };
    let s = store::connect_with(&direct, &opts).await.unwrap();
    assert_eq!(s.count_sites().await.unwrap(), 0);
    let mut watch = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let names = async |c: &mut sqlx::PgConnection| -> BTreeSet<String> {
        sqlx::query_scalar::<_, String>(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'yizhan-%'",
        )
        .fetch_all(c)
        .await
        .unwrap()
        .into_iter()
        .collect()
    };
    // The listener connects in the background: give it up to 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = names(&mut watch).await;
    while seen.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = names(&mut watch).await;
    }
    assert_eq!(
        seen,
        BTreeSet::from(["yizhan-direct".to_owned(), "yizhan-pooled".to_owned()])
    );
}
