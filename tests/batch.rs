//! Group commit decides exactly as one command at a time would (issue 24):
//! random mixes of commands (book with and without keys, retries and reused
//! keys, cancel by holder and manager, accept, check-in, lapse, capacity
//! edits) on two events run through `store::batch::run` in batches of random
//! sizes on one SQLite file, and one by one, each in its own transaction, on
//! another. Every answer and the final state (bookings, events, inboxes)
//! must be the same, once the random ids are named by creation order.
//!
//! On SQLite by default; on two fresh PostgreSQL databases under
//! `YIZHAN_TEST_DATABASE=postgres` (`scripts/test` runs both). The failures
//! are made by the database itself: a trigger that raises, and a deferred
//! foreign key that fails at COMMIT, in each dialect.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use yizhan::domain::booking::{Canceller, EventPatch};
use yizhan::domain::event::{
    BookingId, Eligibility, EventDraft, EventId, EventKind, EventStatus, Quota, QuotaAttribute,
};
use yizhan::domain::user::{Gender, Profile, Role, User};
use yizhan::store::batch;
use yizhan::store::commands::{BookCommand, Command};
use yizhan::store::{DynStore, connect};

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

fn on_postgres() -> bool {
    std::env::var("YIZHAN_TEST_DATABASE").as_deref() == Ok("postgres")
}

#[derive(Debug, Clone)]
enum Op {
    Book {
        event: usize,
        user: usize,
        key: Option<u8>,
    },
    Cancel {
        nth: usize,
        manager: bool,
    },
    Accept {
        nth: usize,
    },
    CheckIn {
        nth: usize,
    },
    Lapse {
        event: usize,
    },
    Capacity {
        event: usize,
        seats: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..USERS, prop::option::of(0..3u8))
            .prop_map(|(event, user, key)| Op::Book { event, user, key }),
        2 => (0..10usize, any::<bool>()).prop_map(|(nth, manager)| Op::Cancel { nth, manager }),
        1 => (0..10usize).prop_map(|nth| Op::Accept { nth }),
        1 => (0..10usize).prop_map(|nth| Op::CheckIn { nth }),
        1 => (0..2usize).prop_map(|event| Op::Lapse { event }),
        1 => (0..2usize, 1..6u32).prop_map(|(event, seats)| Op::Capacity { event, seats }),
    ]
}

const USERS: usize = 5;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
}

/// The time of the i-th command: 7 minutes apart, so offers (1 h) lapse,
/// booking closes and the first event starts within a run.
fn at(i: usize) -> DateTime<Utc> {
    t0() + Duration::minutes(7 * i as i64)
}

fn draft(n: usize, offer: Option<u32>, female_seats: u32) -> EventDraft {
    let start = t0() + Duration::hours(2 + 2 * n as i64);
    EventDraft {
        kind: EventKind::Recuperation,
        site_id: None,
        venue_name: Some("礼堂".into()),
        lat: 36.0,
        lon: 117.0,
        title: format!("活动{n}"),
        description: String::new(),
        starts_at: start,
        ends_at: start + Duration::hours(2),
        capacity: 3,
        booking_opens_at: t0() - Duration::hours(1),
        booking_closes_at: start,
        cancel_deadline: start - Duration::minutes(30),
        waitlist: n == 0,
        status: EventStatus::Published,
        quotas: vec![Quota {
            attribute: QuotaAttribute::Gender,
            value: "female".into(),
            seats: female_seats,
        }],
        // The second counts trips of the year (its rule reads what the batch wrote).
        eligibility: Eligibility {
            max_per_year: (n == 1).then_some(1),
            ..Eligibility::default()
        },
        offer_hours: offer.filter(|_| n == 0),
        draw: None,
    }
}

/// One database with the same people and events as its twin.
struct Db {
    store: DynStore,
    url: String,
    _dir: tempfile::TempDir,
    users: Vec<User>,
    events: Vec<EventId>,
    /// Bookings in the order they were made.
    bookings: Vec<BookingId>,
}

async fn db(genders: &[bool], offer: Option<u32>, female_seats: u32) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = helpers::test_database_url(&dir).await.url;
    let store = connect(&url).await.unwrap();
    let mut users = Vec::new();
    for (i, female) in genders.iter().enumerate() {
        let u = store
            .put_user(
                &format!("1370000{i:04}").parse().unwrap(),
                Role::Worker,
                &[],
                t0(),
            )
            .await
            .unwrap();
        let profile = Profile {
            gender: Some(if *female {
                Gender::Female
            } else {
                Gender::Male
            }),
            ..Profile::default()
        };
        store.set_profile(u.id, &profile).await.unwrap();
        users.push(store.user(u.id).await.unwrap().unwrap());
    }
    let mut events = Vec::new();
    for n in 0..2 {
        let e = store
            .create_event(draft(n, offer, female_seats), None, t0())
            .await
            .unwrap();
        events.push(e.id);
    }
    Db {
        store,
        url,
        _dir: dir,
        users,
        events,
        bookings: Vec::new(),
    }
}

impl Db {
    /// The commands of a spec, with this database's ids.
    fn commands(&self, ops: &[(usize, Op)]) -> Vec<Command> {
        let booking = |nth: usize| {
            // A booking made before this batch, or a made-up one.
            self.bookings
                .get(nth)
                .copied()
                .unwrap_or_else(|| BookingId::from_u64(nth as u64 + 1).unwrap())
        };
        ops.iter()
            .map(|(i, op)| {
                let at = at(*i);
                match op {
                    Op::Book { event, user, key } => Command::Book(Box::new(BookCommand {
                        user: self.users[*user].clone(),
                        event: self.events[*event],
                        key: key.map(|k| format!("k{k}")),
                        request_hash: format!("event {event}"),
                        at,
                    })),
                    Op::Cancel { nth, manager } => Command::Cancel {
                        id: booking(*nth),
                        by: if *manager {
                            Canceller::Manager
                        } else {
                            Canceller::Holder
                        },
                        at,
                    },
                    Op::Accept { nth } => Command::Accept {
                        id: booking(*nth),
                        at,
                    },
                    Op::CheckIn { nth } => Command::CheckIn {
                        event: self.events[0],
                        id: booking(*nth),
                        at,
                    },
                    Op::Lapse { event } => Command::LapseOffers {
                        event: self.events[*event],
                        at,
                    },
                    Op::Capacity { event, seats } => Command::EditEvent {
                        id: self.events[*event],
                        patch: Box::new(EventPatch {
                            capacity: Some(*seats),
                            ..EventPatch::default()
                        }),
                        at,
                    },
                }
            })
            .collect()
    }

    /// Learn the bookings made so far, in the order they were made.
    async fn learn(&mut self) {
        let mut all = Vec::new();
        for e in &self.events {
            for row in self.store.attendees(*e).await.unwrap() {
                all.push((row.booking.created_at, row.booking.id));
            }
        }
        all.sort();
        for (_, id) in all {
            if !self.bookings.contains(&id) {
                self.bookings.push(id);
            }
        }
    }

    /// Text with this database's ids named by their order.
    fn named(&self, text: String) -> String {
        let mut names: Vec<(String, String)> = Vec::new();
        for (k, id) in self.bookings.iter().enumerate() {
            names.push((id.to_string(), format!("B{k}")));
            names.push((format!("{id:?}"), format!("B{k}")));
        }
        for (k, id) in self.events.iter().enumerate() {
            names.push((id.to_string(), format!("E{k}")));
            names.push((format!("{id:?}"), format!("E{k}")));
        }
        names
            .into_iter()
            .fold(text, |t, (from, to)| t.replace(&from, &to))
    }

    /// Everything the commands can change, named.
    async fn state(&self) -> String {
        let mut out = Vec::new();
        for e in &self.events {
            let ev = self.store.get_event(*e).await.unwrap().unwrap();
            out.push(format!(
                "event held={} capacity={} version={} status={:?}",
                ev.held, ev.draft.capacity, ev.version, ev.draft.status
            ));
            for row in self.store.attendees(*e).await.unwrap() {
                let view = self
                    .store
                    .get_booking(row.booking.id)
                    .await
                    .unwrap()
                    .unwrap();
                out.push(format!(
                    "{:?} position={:?}",
                    row.booking, view.waitlist_position
                ));
            }
        }
        for u in &self.users {
            let mut inbox: Vec<String> = self
                .store
                .inbox(u.id, None, 1000)
                .await
                .unwrap()
                .into_iter()
                .map(|n| {
                    self.named(format!(
                        "{} {:?} {} {} {}",
                        u.id, n.kind, n.title, n.body, n.data
                    ))
                })
                .collect();
            inbox.sort();
            out.extend(inbox);
        }
        self.named(out.join("\n"))
    }
}

fn scenario() -> impl Strategy<Value = (Vec<bool>, Option<u32>, u32, Vec<Op>, Vec<usize>)> {
    (
        prop::collection::vec(any::<bool>(), USERS),
        prop::option::of(Just(1u32)),
        0..3u32,
        prop::collection::vec(op(), 1..40),
        prop::collection::vec(1..9usize, 40),
    )
}

proptest! {
    // Two fresh databases a case: fewer cases where a database costs more.
    #![proptest_config(ProptestConfig {
        cases: if on_postgres() { 16 } else { 64 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_batch_decides_as_one_command_at_a_time((genders, offer, female, ops, sizes) in scenario()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut batched = db(&genders, offer, female).await;
            let mut single = db(&genders, offer, female).await;
            let ops: Vec<(usize, Op)> = ops.into_iter().enumerate().collect();
            let mut answers: HashMap<&str, Vec<String>> = HashMap::new();
            let mut start = 0;
            for size in sizes {
                if start >= ops.len() {
                    break;
                }
                let chunk = &ops[start..(start + size).min(ops.len())];
                start += chunk.len();
                let b = batch::run(&*batched.store, &batched.commands(chunk)).await;
                let mut s = Vec::new();
                for cmd in single.commands(chunk) {
                    s.extend(batch::run(&*single.store, std::slice::from_ref(&cmd)).await);
                }
                batched.learn().await;
                single.learn().await;
                for db in [&batched, &single] {
                    prop_assert_eq!(untrue_tails(db).await, Vec::<String>::new());
                }
                for (name, db, got) in [("batched", &batched, b), ("single", &single, s)] {
                    answers.entry(name).or_default().extend(
                        got.into_iter().map(|a| db.named(format!("{a:?}"))),
                    );
                }
            }
            let (a, b) = (&answers["batched"], &answers["single"]);
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                prop_assert_eq!(x, y, "command {}: {:?}", i, ops[i].1);
            }
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(batched.state().await, single.state().await);
            // The mix did something: at least one booking was made.
            prop_assert_eq!(batched.bookings.len(), single.bookings.len());
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// Run SQL on the database behind `db` from a connection of the test's own:
/// `sqlite` on SQLite, `postgres` on PostgreSQL.
async fn sql(db: &Db, sqlite: &str, postgres: &str) {
    use sqlx::Connection;
    if on_postgres() {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// Events whose waitlist tail on the event row (kept by the triggers of
/// `20261205000004_waitlist_tail.sql`) differs from counting their bookings.
async fn untrue_tails(db: &Db) -> Vec<String> {
    use sqlx::Connection;
    let q = "SELECT e.id || ': kept ' || e.waitlisted || '/' || e.last_seq || ', counted ' || \
             (SELECT count(*) FROM bookings b WHERE b.event_id = e.id AND b.status = 'waitlisted') \
             || '/' || (SELECT coalesce(max(waitlist_seq), 0) FROM bookings b WHERE b.event_id = e.id) \
             FROM events e WHERE e.waitlisted <> (SELECT count(*) FROM bookings b \
             WHERE b.event_id = e.id AND b.status = 'waitlisted') \
             OR e.last_seq <> (SELECT coalesce(max(waitlist_seq), 0) FROM bookings b WHERE b.event_id = e.id)";
    if on_postgres() {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(q).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(q).fetch_all(&mut conn).await.unwrap()
    }
}

fn book(db: &Db, user: usize, i: usize) -> Command {
    Command::Book(Box::new(BookCommand {
        user: db.users[user].clone(),
        event: db.events[0],
        key: Some(format!("k{i}")),
        request_hash: "h".into(),
        at: at(i),
    }))
}

/// Who holds a booking of the first event, by user index.
async fn holders(db: &Db) -> Vec<usize> {
    let mut out: Vec<usize> = db
        .store
        .attendees(db.events[0])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            db.users
                .iter()
                .position(|u| u.id == r.booking.user)
                .unwrap()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_refused_and_a_failing_command_leave_their_neighbours_committed() {
    let db = db(&[false; USERS], None, 0).await;
    // Person 3's booking fails in the database (as a constraint would).
    let id = db.users[3].id;
    sql(
        &db,
        &format!(
            "CREATE TRIGGER fail_one BEFORE INSERT ON bookings WHEN NEW.user_id = {id} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        ),
        &format!(
            "CREATE FUNCTION fail_one() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
             CREATE TRIGGER fail_one BEFORE INSERT ON bookings FOR EACH ROW \
             WHEN (NEW.user_id = {id}) EXECUTE FUNCTION fail_one();"
        ),
    )
    .await;
    let cmds = vec![
        book(&db, 0, 0),
        book(&db, 0, 1), // refused: person 0 has booked already
        book(&db, 3, 2), // fails
        book(&db, 4, 3),
    ];
    let answers = batch::run(&*db.store, &cmds).await;
    let text: Vec<String> = answers.iter().map(|a| format!("{a:?}")).collect();
    assert!(
        text[0].contains("Booked") && text[0].contains("Confirmed"),
        "{}",
        text[0]
    );
    assert!(text[1].contains("AlreadyBooked"), "{}", text[1]);
    assert!(text[2].contains("injected failure"), "{}", text[2]);
    assert!(answers[2].is_err());
    assert!(
        text[3].contains("Booked") && text[3].contains("Confirmed"),
        "{}",
        text[3]
    );
    assert_eq!(holders(&db).await, vec![0, 4]);
    let ev = db.store.get_event(db.events[0]).await.unwrap().unwrap();
    assert_eq!(ev.held, 2);
}

#[tokio::test]
async fn a_failed_commit_answers_none_of_its_commands_with_success() {
    let db = db(&[false; USERS], None, 0).await;
    // Person 3's booking leaves a row whose deferred foreign key fails at
    // COMMIT: every statement succeeds, the commit does not.
    let id = db.users[3].id;
    sql(
        &db,
        &format!(
            "CREATE TABLE t_parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE t_child (p INTEGER REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED); \
             CREATE TRIGGER orphan AFTER INSERT ON bookings WHEN NEW.user_id = {id} \
             BEGIN INSERT INTO t_child VALUES (42); END;"
        ),
        &format!(
            "CREATE TABLE t_parent (id integer PRIMARY KEY); \
             CREATE TABLE t_child (p integer REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED); \
             CREATE FUNCTION orphan() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN INSERT INTO t_child VALUES (42); RETURN NEW; END $$; \
             CREATE TRIGGER orphan AFTER INSERT ON bookings FOR EACH ROW \
             WHEN (NEW.user_id = {id}) EXECUTE FUNCTION orphan();"
        ),
    )
    .await;
    let cmds = vec![book(&db, 0, 0), book(&db, 3, 1), book(&db, 4, 2)];
    let answers = batch::run(&*db.store, &cmds).await;
    for a in &answers {
        assert!(
            matches!(a, Err(yizhan::store::StoreError::Busy(_))),
            "a command of a failed commit was answered {a:?}"
        );
    }
    assert_eq!(answers.len(), 3);
    assert!(holders(&db).await.is_empty());
    // The next batch starts afresh: without person 3 it commits.
    let answers = batch::run(&*db.store, &[book(&db, 0, 0), book(&db, 4, 2)]).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(holders(&db).await, vec![0, 4]);
}
