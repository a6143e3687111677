//! Group commit: many commands, one transaction, one commit (issue 24).
//!
//! [`run`] takes commands in arrival order and decides each with the pure
//! rules of `domain/`, exactly as if they ran one by one:
//! - the events the commands name are locked once, in id order (so two
//!   batches never wait on each other in a cycle);
//! - bookings, the crowd's command, are decided on a snapshot held in memory:
//!   an event's seats and waitlist tail are read once, the people's active
//!   bookings and their Idempotency-Keys in one query each, and every
//!   decision moves the snapshot on for the next; their rows are written
//!   together ([`WriteTx::insert_bookings`], [`WriteTx::put_idempotencies`]);
//! - any other command (cancel, accept, check-in, the worker's jobs, an
//!   edit) first writes what is pending, then reads its own snapshot through
//!   the transaction, which sees everything before it; the snapshot in
//!   memory is read anew after it.
//!
//! A refused command has no effects and does not disturb its neighbours. A
//! command whose rule panics is answered with an error alone (a booking at
//! once; another command after the batch is run again one by one). A write that
//! fails rolls the batch back, and the batch is run again one command per
//! transaction, so the command that failed fails alone. A failed commit
//! fails every command of the batch (`Busy`: 503, retry): nothing is
//! answered before its commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::commands::{Answer, BookCommand, Booked, Command, decide};
use super::{Store, StoreError, WriteTx};
use crate::domain::booking::{self, BookSnapshot, BookingRecord, Effect, HeldCounts};
use crate::domain::event::{BookingId, Event, EventId};
use crate::domain::idempotency::{self, IdempotencyRecord, Replay};
use crate::domain::notify::Notice;
use crate::domain::user::UserId;

/// Run `cmds` in arrival order and answer each (see the module's notes).
pub async fn run(store: &dyn Store, cmds: &[Command]) -> Vec<Result<Answer, StoreError>> {
    match attempt(store, cmds).await {
        Ok(answers) => answers,
        Err(Failed::Write(e)) if cmds.len() == 1 => vec![Err(e)],
        // The connection is gone (a failover): running the commands one by
        // one would only meet the same outage once per command.
        Err(Failed::Write(e)) if super::postgres::connection_lost(&e) => {
            tracing::warn!(error = %e, commands = cmds.len(),
                "a batch lost its database connection; none of its commands happened");
            cmds.iter().map(|_| Err(busy(&e))).collect()
        }
        Err(Failed::Write(e)) => {
            tracing::warn!(error = %e, commands = cmds.len(),
                "a batch's write failed; running its commands one by one");
            let mut out = Vec::with_capacity(cmds.len());
            for cmd in cmds {
                out.push(match attempt(store, std::slice::from_ref(cmd)).await {
                    Ok(mut a) => a.pop().unwrap_or_else(|| Err(nothing())),
                    Err(Failed::Write(e)) => Err(e),
                    Err(Failed::Whole(e)) => Err(busy(&e)),
                });
            }
            out
        }
        Err(Failed::Whole(e)) => {
            tracing::error!(error = %e, commands = cmds.len(),
                "a batch could not begin or commit; none of its commands happened");
            cmds.iter().map(|_| Err(busy(&e))).collect()
        }
    }
}

fn nothing() -> StoreError {
    StoreError::Corrupt("a batch of one answered nothing".into())
}

/// The error each command of a batch that failed as a whole gets.
fn busy(e: &StoreError) -> StoreError {
    StoreError::Busy(format!("the write was not committed: {e}").into())
}

/// How an attempt at a batch failed.
enum Failed {
    /// A statement failed: the transaction is rolled back; which command
    /// caused it is unknown.
    Write(StoreError),
    /// The transaction could not begin, or its commit failed: nothing of it
    /// is written.
    Whole(StoreError),
}

/// Errors that are a command's answer (a refusal), not a failed write.
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotFound
            | StoreError::WrongState(_)
            | StoreError::Invalid { .. }
            | StoreError::KeyReuse
            | StoreError::Conflict { .. }
            | StoreError::Duplicate(_)
    )
}

async fn attempt(
    store: &dyn Store,
    cmds: &[Command],
) -> Result<Vec<Result<Answer, StoreError>>, Failed> {
    let mut tx = store.begin().await.map_err(Failed::Whole)?;
    let mut events: Vec<EventId> = cmds.iter().filter_map(Command::event).collect();
    events.sort_unstable();
    events.dedup();
    let mut batch = Batch::default();
    for e in events {
        let event = tx.lock_event(e).await.map_err(Failed::Write)?;
        batch.locked.insert(e, event);
    }
    let mut out = Vec::with_capacity(cmds.len());
    for (i, cmd) in cmds.iter().enumerate() {
        let answer = match cmd {
            Command::Book(c) => batch.book(&mut tx, c, &cmds[i..]).await?,
            other => {
                batch.flush(&mut tx).await?;
                batch.forget();
                // A rule that panics: the batch runs again one by one, where
                // this command fails alone.
                let decided = AssertUnwindSafe(decide(&mut tx, other))
                    .catch_unwind()
                    .await
                    .map_err(|_| {
                        Failed::Write(StoreError::Corrupt(format!(
                            "the rules panicked on {other:?}"
                        )))
                    })?;
                match decided {
                    Ok((answer, effects)) => {
                        tx.apply(&effects).await.map_err(Failed::Write)?;
                        Ok(answer)
                    }
                    Err(e) if is_refusal(&e) => Err(e),
                    Err(e) => return Err(Failed::Write(e)),
                }
            }
        };
        out.push(answer);
    }
    batch.flush(&mut tx).await?;
    tx.commit().await.map_err(Failed::Whole)?;
    Ok(out)
}

/// An event's seats as the bookings of a batch move them.
struct Seats {
    event: Event,
    held: HeldCounts,
    waitlisted: u32,
    last_seq: i64,
}

/// What a batch has decided and not yet written, and what it knows.
#[derive(Default)]
struct Batch {
    /// The events as locked when the batch began (read once: a booking's
    /// seats start from it), until another command may have changed them.
    locked: HashMap<EventId, Option<Event>>,
    seats: HashMap<EventId, Seats>,
    /// Active bookings per (event, person): read for the batch's bookings at
    /// once, then kept up to date by its decisions.
    active: HashMap<(EventId, UserId), Option<BookingId>>,
    /// Idempotency records as stored when the batch began, for its keys.
    stored_keys: Option<HashMap<(UserId, String), IdempotencyRecord>>,
    /// Idempotency records the batch wrote.
    written_keys: HashMap<(UserId, String), IdempotencyRecord>,
    pending: Pending,
}

/// Rows decided and not yet written.
#[derive(Default)]
struct Pending {
    bookings: Vec<BookingRecord>,
    events: BTreeMap<EventId, Event>,
    notices: Vec<Notice>,
    keys: Vec<(UserId, String, IdempotencyRecord)>,
}

impl Batch {
    /// Write what is pending, set-based.
    async fn flush(&mut self, tx: &mut Box<dyn WriteTx>) -> Result<(), Failed> {
        let p = std::mem::take(&mut self.pending);
        if !p.bookings.is_empty() || !p.keys.is_empty() {
            tx.insert_booked(&p.bookings, &p.keys)
                .await
                .map_err(Failed::Write)?;
        }
        let mut effects: Vec<Effect> = p.events.into_values().map(Effect::SaveEvent).collect();
        effects.extend(p.notices.into_iter().map(Effect::Notify));
        if !effects.is_empty() {
            tx.apply(&effects).await.map_err(Failed::Write)?;
        }
        Ok(())
    }

    /// Forget what another command may have changed: events, seats and
    /// active bookings are read anew (keys are not: only bookings write them).
    fn forget(&mut self) {
        self.locked.clear();
        self.seats.clear();
        self.active.clear();
    }

    /// Decide one booking attempt; `rest` is it and the commands after it.
    async fn book(
        &mut self,
        tx: &mut Box<dyn WriteTx>,
        c: &BookCommand,
        rest: &[Command],
    ) -> Result<Result<Answer, StoreError>, Failed> {
        let at = super::micros(c.at);
        if let Some(key) = &c.key {
            let id = (c.user.id, key.clone());
            let record = match self.written_keys.get(&id).cloned() {
                Some(r) => Some(r),
                None => self.stored_keys(tx, rest).await?.get(&id).cloned(),
            };
            match idempotency::judge(record.as_ref(), &c.request_hash, at) {
                Replay::Answer(body) => {
                    return Ok(serde_json::from_str(body)
                        .map(|outcome| {
                            Answer::Booked(Booked {
                                outcome,
                                replayed: true,
                            })
                        })
                        .map_err(|e| StoreError::Corrupt(format!("idempotent answer: {e}"))));
                }
                Replay::KeyReuse => return Ok(Err(StoreError::KeyReuse)),
                Replay::Fresh => {}
            }
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.seats.entry(c.event) {
            let event = match self.locked.remove(&c.event) {
                Some(event) => event,
                None => tx.lock_event(c.event).await.map_err(Failed::Write)?,
            };
            let Some(event) = event else {
                return Ok(Err(StoreError::NotFound));
            };
            let (held, tail) = tx.seats(c.event).await.map_err(Failed::Write)?;
            slot.insert(Seats {
                event,
                held,
                waitlisted: tail.waitlisted,
                last_seq: tail.last_seq,
            });
        }
        let active = self.active_booking(tx, c.event, c.user.id, rest).await?;
        let rules = &self.seats[&c.event].event.draft.eligibility;
        let (needs_trips, needs_membership) =
            (rules.max_per_year.is_some(), rules.union_members_only);
        // Rare: read what only some events' rules need through the
        // transaction, after writing what is pending so that it counts.
        let (mut trips, mut membership) = (0, None);
        if needs_trips || needs_membership {
            self.flush(tx).await?;
            let event = &self.seats[&c.event].event;
            if needs_trips {
                let (from, to) = booking::trip_year(event.draft.starts_at);
                let kind = event.draft.kind;
                trips = tx
                    .seats_held_in(c.user.id, kind, from, to)
                    .await
                    .map_err(Failed::Write)?;
            }
            if needs_membership {
                membership = tx
                    .active_membership(c.user.id)
                    .await
                    .map_err(Failed::Write)?;
            }
        }
        let seats = self.seats.get_mut(&c.event).expect("read above");
        let snapshot = BookSnapshot {
            event: seats.event.clone(),
            held: seats.held.clone(),
            waitlisted: seats.waitlisted,
            last_seq: seats.last_seq,
            active,
            trips_this_year: trips,
            membership,
        };
        let decided = std::panic::catch_unwind(AssertUnwindSafe(|| {
            booking::book(&snapshot, &c.user, BookingId::random(), at)
        }));
        let Ok(decision) = decided else {
            tracing::error!(event = %c.event, user = c.user.id, "the booking rules panicked");
            return Ok(Err(StoreError::Corrupt(
                "the booking rules failed on this request".into(),
            )));
        };
        for effect in decision.effects {
            match effect {
                Effect::Insert(r) => {
                    if r.status.holds_seat() {
                        *seats.held.entry(r.quota.clone()).or_insert(0) += 1;
                    } else if let Some(seq) = r.waitlist_seq {
                        seats.waitlisted += 1;
                        seats.last_seq = seq;
                    }
                    self.active.insert((r.event, r.user), Some(r.id));
                    self.pending.bookings.push(r);
                }
                Effect::SaveEvent(e) => {
                    seats.event = e.clone();
                    self.pending.events.insert(e.id, e);
                }
                Effect::Notify(n) => self.pending.notices.push(n),
                // A booking attempt never moves or reminds anyone.
                e @ (Effect::Transition(_)
                | Effect::Reminded { .. }
                | Effect::PutApplication(_)) => {
                    return Ok(Err(StoreError::Corrupt(format!("a booking decided {e:?}"))));
                }
            }
        }
        if let Some(key) = &c.key {
            let record = IdempotencyRecord {
                request_hash: c.request_hash.clone(),
                body: serde_json::to_string(&decision.outcome).expect("an outcome serializes"),
                created_at: at,
            };
            self.written_keys
                .insert((c.user.id, key.clone()), record.clone());
            self.pending.keys.push((c.user.id, key.clone(), record));
        }
        Ok(Ok(Answer::Booked(Booked {
            outcome: decision.outcome,
            replayed: false,
        })))
    }

    /// The stored records of the keys of the batch's bookings, read at the
    /// first keyed booking (the batch's own records are in `written_keys`).
    async fn stored_keys(
        &mut self,
        tx: &mut Box<dyn WriteTx>,
        rest: &[Command],
    ) -> Result<&HashMap<(UserId, String), IdempotencyRecord>, Failed> {
        if self.stored_keys.is_none() {
            let mut keys: Vec<(UserId, String)> = rest
                .iter()
                .filter_map(|c| match c {
                    Command::Book(b) => b.key.clone().map(|k| (b.user.id, k)),
                    _ => None,
                })
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            keys.sort_unstable();
            let found = tx.idempotencies(&keys).await.map_err(Failed::Write)?;
            self.stored_keys = Some(
                found
                    .into_iter()
                    .map(|(user, key, r)| ((user, key), r))
                    .collect(),
            );
        }
        Ok(self.stored_keys.as_ref().expect("read above"))
    }

    /// The person's active booking of `event`: the batch's bookings of that
    /// event are looked up together the first time one is needed.
    async fn active_booking(
        &mut self,
        tx: &mut Box<dyn WriteTx>,
        event: EventId,
        user: UserId,
        rest: &[Command],
    ) -> Result<Option<BookingId>, Failed> {
        if let Some(known) = self.active.get(&(event, user)) {
            return Ok(*known);
        }
        let users: Vec<UserId> = rest
            .iter()
            .filter_map(|c| match c {
                Command::Book(b) if b.event == event => Some(b.user.id),
                _ => None,
            })
            .filter(|u| !self.active.contains_key(&(event, *u)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found = tx
            .active_bookings(event, &users)
            .await
            .map_err(Failed::Write)?;
        for u in users {
            self.active.insert((event, u), None);
        }
        for (u, id) in found {
            self.active.insert((event, u), Some(id));
        }
        Ok(self.active.get(&(event, user)).copied().flatten())
    }
}
