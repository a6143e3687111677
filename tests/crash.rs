//! Crash safety (issue 16): a crowd books through the real `yizhan serve`
//! while the process is SIGKILLed at random moments, several times, and
//! restarted on the same database (a SQLite file; a fresh PostgreSQL database
//! under `YIZHAN_TEST_DATABASE=postgres`). The clients behave as phone apps:
//! every booking carries an `Idempotency-Key`, and a request that got no
//! answer (connection reset or refused, a body cut short) is sent again with
//! the same key — or, for a cancellation, again — until it is answered.
//!
//! After the last restart:
//! - every booking a client saw answered 201 is still there, with the same
//!   id, in a state consistent with what the client did afterwards (still
//!   confirmed; waitlisted or moved up; cancelled if it cancelled);
//! - nobody holds a booking they were not answered 201 for, nor two;
//! - every request, sent again with its key, is replayed: the same status and
//!   body, marked `Idempotent-Replayed`, and no new booking;
//! - no event holds more seats than its capacity, no quota more than its
//!   seats, and a waitlist is never left waiting behind a free seat;
//! - every notice the bookings and cancellations caused is in its person's
//!   inbox, and the outbox delivers every one of them to the push service
//!   stand-in (`tests/push_service.py`): each accepted at least once — the
//!   design's guarantee, since a push accepted just before a kill and not yet
//!   recorded is sent again — and none that no inbox holds.
//!
//! Each kill waits (half a second at most) for the writer to hold two or
//! more commands (`yizhan_write_queue` in `/metrics`), so that it lands
//! inside a batch (issue 24): commands decided together, not yet committed
//! or committed and not yet answered. At least one kill must land so.
//!
//! The seed of the kill moments and the crowd's choices is printed; set
//! `YIZHAN_CRASH_SEED` to run one again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use yizhan::domain::user::{Gender, Phone, Profile, Role};
use yizhan::store::{self, DynStore};

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use helpers::PushService;

/// People in the crowd.
const PEOPLE: usize = 200;
/// SIGKILLs (each followed by a restart on the same database).
const KILLS: usize = 5;
/// How long anything may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The events: capacity, waitlist, offer hours, and whether seats are split
/// by gender (half and half).
const EVENTS: [(u32, bool, Option<u32>, bool); 5] = [
    (20, true, None, false),
    (10, true, Some(12), false),
    (16, true, None, true),
    (12, false, None, false),
    (10, true, None, false),
];
/// The event its organiser cancels mid-burst (every holder is told).
const CALLED_OFF: usize = 4;

/// One `yizhan serve` process on port 0; its log kept for a failure's message.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(url: &str, dir: &std::path::Path) -> Server {
        let key = dir.join("vapid.pem");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_yizhan"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
            .args(["--no-seed", "--push-allow-insecure-loopback"])
            .args(["--worker-interval", "0.1", "--delivery-lease", "1s"])
            .arg("--vapid-private-key-file")
            .arg(&key)
            .args(["--vapid-subject", "mailto:ops@example.org"])
            .stdout(Stdio::null());
        let (child, addr, log) = helpers::spawn_serve(cmd, PATIENCE);
        Server { child, addr, log }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown, no drain.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

async fn token_for(store: &DynStore, phone: &str, role: Role, gender: Option<Gender>) -> String {
    let phone: Phone = phone.parse().unwrap();
    let now = chrono::Utc::now();
    let user = store.put_user(&phone, role, &[], now).await.unwrap();
    if gender.is_some() {
        let profile = Profile {
            gender,
            ..Profile::default()
        };
        store.set_profile(user.id, &profile).await.unwrap();
    }
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

/// Where the server listens now (it moves at each restart), and a client.
struct Target {
    base: RwLock<String>,
    http: reqwest::Client,
    /// Requests that got no answer and were sent again.
    resent: AtomicUsize,
}

/// An answer as a client saw it.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.base.read().unwrap())
    }

    /// Commands the server's writer holds (queued or in the batch under
    /// way), from `/metrics`; 0 when it cannot be read.
    async fn writer_holds(&self) -> u64 {
        let Ok(r) = self.http.get(self.url("/metrics")).send().await else {
            return 0;
        };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("yizhan_write_queue "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Send until answered, as a phone app does: a request that got no answer
    /// (the server died under it, or is not back yet) or a 503 goes again,
    /// the same request, after a short pause.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        key: Option<&str>,
    ) -> Answer {
        let body = key.map(|_| json!({}));
        self.send_json(method, path, token, key, body.as_ref())
            .await
    }

    /// As [`Target::send`], with a JSON body.
    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < PATIENCE,
                "{method} {path}: no answer within {PATIENCE:?}"
            );
            let mut r = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(token)
                .timeout(Duration::from_secs(20));
            if let Some(k) = key {
                r = r.header("idempotency-key", k);
            }
            if let Some(b) = body {
                r = r.json(b);
            }
            let answered = match r.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let replayed = r.headers().contains_key("idempotent-replayed");
                    r.bytes().await.map(|b| (status, replayed, b))
                }
                Err(e) => Err(e),
            };
            match answered {
                Ok((503, _, _)) | Err(_) => {
                    self.resent.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Ok((status, replayed, body)) => {
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    assert!(status < 500, "{method} {path}: {status} {body}");
                    return Answer {
                        status,
                        replayed,
                        body,
                    };
                }
            }
        }
    }
}

/// One person's booking attempt and what became of it.
#[derive(Debug, Clone)]
struct Attempt {
    person: usize,
    event: usize,
    key: String,
    answer: Answer,
    /// The person cancelled it (and was answered 200).
    cancelled: bool,
}

fn person_gender(i: usize) -> Gender {
    if i.is_multiple_of(2) {
        Gender::Female
    } else {
        Gender::Male
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_survive_sigkill_and_restarts() {
    let seed: u64 = std::env::var("YIZHAN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: {seed} (YIZHAN_CRASH_SEED={seed} repeats its choices)");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = helpers::test_database_url(&dir).await;
    let status = Command::new(env!("CARGO_BIN_EXE_yizhan"))
        .args(["vapid", "generate", "--out"])
        .arg(dir.path().join("vapid.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Accounts straight in the store (it migrates the fresh database).
    let store = store::connect(&db.url).await.unwrap();
    let admin = token_for(&store, "13600000000", Role::Admin, None).await;
    let mut tokens = Vec::with_capacity(PEOPLE);
    for i in 0..PEOPLE {
        let phone = format!("137{i:08}");
        tokens.push(token_for(&store, &phone, Role::Worker, Some(person_gender(i))).await);
    }

    yizhan::push::install_tls_provider();
    let push = PushService::start().await;
    let mut server = Server::start(&db.url, dir.path());
    let target = Arc::new(Target {
        base: RwLock::new(server.addr.clone()),
        http: reqwest::Client::new(),
        resent: AtomicUsize::new(0),
    });

    // Everyone's browser subscribes to Web Push.
    for (i, t) in tokens.iter().enumerate() {
        let browser = push.subscriber(&format!("p{i}")).await;
        let r = target
            .http
            .post(target.url("/v1/push/subscriptions"))
            .bearer_auth(t)
            .json(&browser)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    // The events.
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    for (capacity, waitlist, offer_hours, by_gender) in EVENTS {
        let mut body = json!({
            "kind": "training", "venue_name": "职工之家", "lat": 36.65, "lon": 117.12,
            "title": "技能培训", "capacity": capacity, "waitlist": waitlist,
            "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::days(11)).to_rfc3339(),
            "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "cancel_deadline": (now + chrono::Duration::days(9)).to_rfc3339(),
        });
        if let Some(h) = offer_hours {
            body["offer_hours"] = json!(h);
        }
        if by_gender {
            let half = capacity / 2;
            body["quotas"] = json!([
                {"attribute": "gender", "value": "female", "seats": half},
                {"attribute": "gender", "value": "male", "seats": capacity - half},
            ]);
        }
        let r = target
            .http
            .post(target.url("/v1/events"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        events.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Each person's plan: one or two events, and whether to cancel a seat
    // they were given (decided now, from the seed).
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let plans: Vec<(u64, Vec<(usize, bool)>)> = (0..PEOPLE)
        .map(|_| {
            let delay = rng.random_range(0..1000);
            let first = rng.random_range(0..EVENTS.len());
            let mut picks = vec![(first, rng.random_bool(0.4))];
            if rng.random_bool(0.5) {
                let second = (first + rng.random_range(1..EVENTS.len())) % EVENTS.len();
                picks.push((second, rng.random_bool(0.4)));
            }
            (delay, picks)
        })
        .collect();
    let bookings_planned: usize = plans.iter().map(|p| p.1.len()).sum();
    // The kill moments: after a share of the booking answers, and a random pause.
    let kill_at: Vec<(usize, u64)> = (1..=KILLS)
        .map(|k| {
            let share = bookings_planned * k / (KILLS + 1);
            (
                share + rng.random_range(0..bookings_planned / (2 * (KILLS + 1))),
                rng.random_range(0..60),
            )
        })
        .collect();

    // The crowd.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut crowd = tokio::task::JoinSet::new();
    for (person, (delay, picks)) in plans.into_iter().enumerate() {
        let (target, token, events, answered) = (
            target.clone(),
            tokens[person].clone(),
            events.clone(),
            answered.clone(),
        );
        crowd.spawn(async move {
            // A think time from the seed: when this person taps "book".
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut mine = Vec::new();
            for (event, cancel) in picks {
                let key = format!("p{person}-e{event}");
                let path = format!("/v1/events/{}/bookings", events[event]);
                let answer = target
                    .send(reqwest::Method::POST, &path, &token, Some(&key))
                    .await;
                answered.fetch_add(1, Ordering::SeqCst);
                let mut attempt = Attempt {
                    person,
                    event,
                    key,
                    answer,
                    cancelled: false,
                };
                if cancel && attempt.answer.status == 201 {
                    let id = attempt.answer.body["id"].as_str().unwrap();
                    let path = format!("/v1/bookings/{id}");
                    let done = target
                        .send(reqwest::Method::DELETE, &path, &token, None)
                        .await;
                    assert_eq!(done.status, 200, "cancel {id}: {}", done.body);
                    assert_eq!(done.body["status"], "cancelled");
                    attempt.cancelled = true;
                }
                mine.push(attempt);
            }
            mine
        });
    }

    // The organiser calls one event off halfway through, retrying likewise.
    let organiser = {
        let (target, admin, answered) = (target.clone(), admin.clone(), answered.clone());
        let path = format!("/v1/events/{}", events[CALLED_OFF]);
        let half = bookings_planned / 2;
        tokio::spawn(async move {
            let deadline = Instant::now() + PATIENCE;
            while answered.load(Ordering::SeqCst) < half {
                assert!(Instant::now() < deadline, "the crowd stalled");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let body = json!({"status": "cancelled"});
            let done = target
                .send_json(reqwest::Method::PATCH, &path, &admin, None, Some(&body))
                .await;
            assert_eq!(done.status, 200, "{}", done.body);
            assert_eq!(done.body["status"], "cancelled");
        })
    };

    // The killer: SIGKILL at each moment, restart on the same database. A
    // kill waits (a little) for the writer to hold several commands, so that
    // it lands inside a batch: commands decided together, not yet committed
    // or not yet answered.
    let mut restarts = Vec::new();
    let mut inside_batches = 0;
    for (k, &(after, pause)) in kill_at.iter().enumerate() {
        let deadline = Instant::now() + PATIENCE;
        while answered.load(Ordering::SeqCst) < after {
            assert!(Instant::now() < deadline, "the crowd stalled at kill {k}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Not synchronisation: a random delay that picks when to kill.
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let until = Instant::now() + Duration::from_millis(500);
        let mut holds = target.writer_holds().await;
        while holds < 2 && Instant::now() < until {
            holds = target.writer_holds().await;
        }
        inside_batches += usize::from(holds >= 2);
        let at = answered.load(Ordering::SeqCst);
        let _ = server.kill();
        let down = Instant::now();
        server = Server::start(&db.url, dir.path());
        *target.base.write().unwrap() = server.addr.clone();
        restarts.push((at, down.elapsed()));
    }
    organiser.await.unwrap();
    let mut attempts = Vec::new();
    while let Some(r) = crowd.join_next().await {
        attempts.extend(r.unwrap());
    }
    eprintln!(
        "{} booking requests by {PEOPLE} people; killed at answers {:?} of {bookings_planned}; \
         {} requests sent again; {inside_batches} kills with the writer holding 2 or more \
         commands; crowd done after {:?}",
        attempts.len(),
        restarts,
        target.resent.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert_eq!(attempts.len(), bookings_planned);
    assert!(
        inside_batches > 0,
        "no kill found the writer holding several commands: none landed inside a batch"
    );
    check(&target, &tokens, &admin, &events, &attempts, &push, &server).await;
    eprintln!("crash test done in {:?}", started.elapsed());
}

/// Every check after the last restart.
async fn check(
    target: &Target,
    tokens: &[String],
    admin: &str,
    events: &[String],
    attempts: &[Attempt],
    push: &PushService,
    server: &Server,
) {
    use reqwest::Method;
    let log = || server.log.lock().unwrap().join("\n");

    // Each person's bookings: exactly the ones they were answered 201 for.
    let mut held: Vec<BTreeMap<&str, u32>> = vec![BTreeMap::new(); events.len()];
    let mut waiting: Vec<BTreeMap<&str, u32>> = vec![BTreeMap::new(); events.len()];
    let mut status_of: HashMap<String, String> = HashMap::new();
    let mut lists = Vec::with_capacity(tokens.len());
    for (person, token) in tokens.iter().enumerate() {
        let mine = target
            .send(Method::GET, "/v1/me/bookings", token, None)
            .await;
        assert_eq!(mine.status, 200);
        let items = mine.body["items"].as_array().unwrap();
        lists.push(mine.body.clone());
        let expected: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| a.person == person && a.answer.status == 201)
            .collect();
        assert_eq!(
            items.len(),
            expected.len(),
            "person {person}: {items:?} for {expected:?}"
        );
        for a in expected {
            let id = a.answer.body["id"].as_str().unwrap();
            let b = items
                .iter()
                .find(|b| b["id"] == id)
                .unwrap_or_else(|| panic!("{}: booking {id}, answered 201, is lost", a.key));
            assert_eq!(b["event"]["id"], events[a.event].as_str());
            let now = b["status"].as_str().unwrap();
            let then = a.answer.body["status"].as_str().unwrap();
            let fine = match (a.cancelled, then) {
                (_, _) if a.event == CALLED_OFF => now == "cancelled",
                (true, _) => now == "cancelled",
                (false, "confirmed") => now == "confirmed",
                (false, "waitlisted") => matches!(now, "waitlisted" | "offered" | "confirmed"),
                _ => false,
            };
            assert!(
                fine,
                "{}: answered {then}, cancelled: {}, now {now}",
                a.key, a.cancelled
            );
            status_of.insert(id.to_owned(), now.to_owned());
            let gender = match person_gender(person) {
                Gender::Female => "female",
                _ => "male",
            };
            match now {
                "confirmed" | "offered" => *held[a.event].entry(gender).or_default() += 1,
                "waitlisted" => *waiting[a.event].entry(gender).or_default() += 1,
                _ => {}
            }
        }
    }

    // A problem's `type` names the server it was answered by (its host and
    // port, which change from one restart to the next here): compared
    // from `/problems/` on.
    let same_server = |body: &Value| {
        let mut b = body.clone();
        if let Some(t) = b.get("type").and_then(Value::as_str) {
            let kind = t[t.find("/problems/").unwrap_or(0)..].to_owned();
            b["type"] = Value::String(kind);
        }
        b
    };
    // Retries replay: the same answer, marked so…
    for a in attempts {
        let path = format!("/v1/events/{}/bookings", events[a.event]);
        let again = target
            .send(Method::POST, &path, &tokens[a.person], Some(&a.key))
            .await;
        assert_eq!(
            (again.status, same_server(&again.body)),
            (a.answer.status, same_server(&a.answer.body)),
            "{}: a retry is the original answer",
            a.key
        );
        assert!(again.replayed, "{}: replayed, not decided anew", a.key);
        match a.answer.status {
            201 => {}
            409 => assert!(
                !EVENTS[a.event].1,
                "{}: 409 only when full, no waitlist",
                a.key
            ),
            422 => assert_eq!(a.event, CALLED_OFF, "{}: 422 only once called off", a.key),
            s => panic!("{}: unexpected {s} {}", a.key, a.answer.body),
        }
    }

    // …and nothing new booked, nothing changed.
    for (person, token) in tokens.iter().enumerate() {
        let mine = target
            .send(Method::GET, "/v1/me/bookings", token, None)
            .await;
        assert_eq!(
            mine.body, lists[person],
            "person {person}: the retries changed nothing"
        );
    }

    // Capacity and quotas hold; a waitlist never waits behind a free seat.
    for (e, &(capacity, _, _, by_gender)) in EVENTS.iter().enumerate() {
        let taken: u32 = held[e].values().sum();
        let queued: u32 = waiting[e].values().sum();
        assert!(taken <= capacity, "event {e}: {taken} seats of {capacity}");
        let detail = target
            .send(
                Method::GET,
                &format!("/v1/events/{}", events[e]),
                admin,
                None,
            )
            .await;
        assert_eq!(
            detail.body["seats_left"],
            json!(capacity - taken),
            "event {e}: its count agrees with its bookings"
        );
        if by_gender {
            let half = capacity / 2;
            for (g, seats) in [("female", half), ("male", capacity - half)] {
                let t = held[e].get(g).copied().unwrap_or(0);
                assert!(t <= seats, "event {e}: {t} {g} seats of {seats}");
                if waiting[e].get(g).copied().unwrap_or(0) > 0 {
                    assert_eq!(t, seats, "event {e}: {g} waitlisted behind a free seat");
                }
            }
        } else if queued > 0 {
            assert_eq!(taken, capacity, "event {e}: waitlisted behind a free seat");
        }
        if e == CALLED_OFF {
            assert_eq!(detail.body["status"], "cancelled");
        }
        eprintln!("event {e}: {taken}/{capacity} seats held, {queued} waiting");
    }

    // Every notice is in its inbox: each seat given at once, each move up.
    let mut inbox_ids: BTreeSet<String> = BTreeSet::new();
    for (person, token) in tokens.iter().enumerate() {
        let page = target
            .send(Method::GET, "/v1/me/notifications?limit=100", token, None)
            .await;
        assert_eq!(page.status, 200);
        assert!(page.body["next"].is_null(), "fewer than 100 each");
        let items = page.body["items"].as_array().unwrap();
        let has = |kind: &str, booking: &str| {
            items
                .iter()
                .any(|n| n["type"] == kind && n["data"]["booking_id"] == booking)
        };
        for a in attempts
            .iter()
            .filter(|a| a.person == person && a.answer.status == 201)
        {
            let id = a.answer.body["id"].as_str().unwrap();
            let then = a.answer.body["status"].as_str().unwrap();
            if then == "confirmed" {
                assert!(
                    has("booking_confirmed", id),
                    "{}: no booking_confirmed",
                    a.key
                );
            }
            if a.event == CALLED_OFF && !a.cancelled {
                assert!(
                    has("event_cancelled", id),
                    "{}: not told of the call-off",
                    a.key
                );
            }
            if then == "waitlisted" {
                // Moved up: a notice says so (it may since have been cancelled).
                let moved = items.iter().any(|n| {
                    n["data"]["booking_id"] == id
                        && matches!(
                            n["type"].as_str(),
                            Some("waitlist_promoted" | "seat_offered")
                        )
                });
                match status_of[id].as_str() {
                    "confirmed" => assert!(has("waitlist_promoted", id), "{}", a.key),
                    "offered" => assert!(has("seat_offered", id), "{}", a.key),
                    "waitlisted" => assert!(!moved, "{}: told of a move never made", a.key),
                    _ => {}
                }
            }
        }
        inbox_ids.extend(items.iter().map(|n| n["id"].as_str().unwrap().to_owned()));
    }
    assert!(!inbox_ids.is_empty());

    // The outbox delivers every notice: each accepted by the push service at
    // least once (polled until then, or a deadline), and none made up.
    let deadline = Instant::now() + PATIENCE;
    let (accepted, pushes) = loop {
        let pushes = push.log().await;
        let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
        for p in &pushes {
            assert!(p["error"].is_null(), "the stand-in refused a push: {p}");
            if p["status"] == 201 {
                *accepted
                    .entry(p["payload"]["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let missing = inbox_ids
            .iter()
            .filter(|id| !accepted.contains_key(*id))
            .count();
        if missing == 0 {
            break (accepted, pushes.len());
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} notices never pushed; server log:\n{}",
            inbox_ids.len(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let made_up: Vec<_> = accepted
        .keys()
        .filter(|id| !inbox_ids.contains(*id))
        .collect();
    assert!(made_up.is_empty(), "pushed but in no inbox: {made_up:?}");
    let twice = accepted.values().filter(|&&n| n > 1).count();
    assert!(
        accepted.values().all(|&n| n <= KILLS + 1),
        "pushed again and again: {accepted:?}"
    );
    eprintln!(
        "{} notices, every one pushed ({pushes} pushes; {twice} accepted twice or more: \
         the answer came just before a kill)",
        inbox_ids.len()
    );
}
