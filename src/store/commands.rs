//! The one write path for events, bookings and sign-in codes, written once
//! for every backend: open a transaction ([`Store::begin`]), read the
//! snapshot the rule needs through [`WriteTx`], let the pure rule in
//! `domain/` decide, apply its effects, commit. A refused command rolls back
//! and so changes nothing.
//!
//! Several processes may run any of these at once on one database: each
//! re-reads its snapshot under the transaction's lock and decides anew, so a
//! job that another node has already done is simply not due any more.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{OTP_REQUEST_MEMORY, OtpRequester, Store, StoreError, WriteTx};
use crate::domain::booking::{
    self, BookSnapshot, BookingRecord, Cancelled, Canceller, CheckIn, Decision, EventPatch,
    EventState,
};
use crate::domain::event::{BookOutcome, BookingId, BookingStatus, Event, EventId};
use crate::domain::idempotency::{self, IdempotencyRecord, Replay};
use crate::domain::otp::{self, OtpCheck, StoredCode};
use crate::domain::user::{Phone, User};

/// A booking attempt.
#[derive(Debug, Clone, Copy)]
pub struct BookRequest<'a> {
    pub user: &'a User,
    pub event: EventId,
    /// The client's Idempotency-Key, if sent.
    pub key: Option<&'a str>,
    /// What the request said (a hash of it), to tell a retry from a new request with the same key.
    pub request_hash: &'a str,
    pub at: DateTime<Utc>,
}

/// What a booking attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Booked {
    pub outcome: BookOutcome,
    /// The answer is a replay of the first request with this key.
    pub replayed: bool,
}

/// A request for a sign-in code.
#[derive(Debug, Clone, Copy)]
pub struct OtpRequest<'a> {
    pub phone: &'a Phone,
    /// The client's address.
    pub ip: &'a str,
    pub code_hash: &'a str,
    /// The code in the clear: only with the development `log` SMS provider.
    pub dev_code: Option<&'a str>,
    pub at: DateTime<Utc>,
    /// How long the code lives.
    pub ttl: Duration,
    /// (requests, window) limits per phone and per address.
    pub phone_limits: &'a [(i64, Duration)],
    pub ip_limits: &'a [(i64, Duration)],
}

/// Which bookings a command acts on, besides the waitlist.
enum Scope {
    One(BookingId),
    Statuses(&'static [BookingStatus]),
}

/// Read an event's state for a command that may move seats.
async fn event_state(
    tx: &mut Box<dyn WriteTx>,
    event: EventId,
    scope: Scope,
) -> Result<EventState, StoreError> {
    let ev = tx.lock_event(event).await?.ok_or(StoreError::NotFound)?;
    let bookings = match scope {
        Scope::One(id) => tx.booking(id).await?.into_iter().collect(),
        Scope::Statuses(s) => tx.bookings_of(event, s).await?,
    };
    Ok(EventState {
        held: tx.held_counts(event).await?,
        waitlist: tx.waitlist(event).await?,
        event: ev,
        bookings,
    })
}

/// Write a decision's effects and commit: how every command ends.
async fn commit<T>(mut tx: Box<dyn WriteTx>, d: Decision<T>) -> Result<T, StoreError> {
    tx.apply(&d.effects).await?;
    tx.commit().await?;
    Ok(d.outcome)
}

/// The event a booking belongs to, read outside any transaction would race:
/// read the booking in the transaction first.
async fn event_of(tx: &mut Box<dyn WriteTx>, id: BookingId) -> Result<EventId, StoreError> {
    Ok(tx.booking(id).await?.ok_or(StoreError::NotFound)?.event)
}

impl dyn Store {
    /// Decide and record a booking attempt. With a key, a retry within 24 h
    /// gets the stored outcome back (`replayed`), and a different request
    /// with the same key is `KeyReuse`.
    pub async fn book(&self, req: BookRequest<'_>) -> Result<Booked, StoreError> {
        let at = super::micros(req.at);
        let mut tx = self.begin().await?;
        if let Some(key) = req.key {
            let record = tx.idempotency(req.user.id, key).await?;
            match idempotency::judge(record.as_ref(), req.request_hash, at) {
                Replay::Answer(body) => {
                    let outcome = serde_json::from_str(body)
                        .map_err(|e| StoreError::Corrupt(format!("idempotent answer: {e}")))?;
                    return Ok(Booked {
                        outcome,
                        replayed: true,
                    });
                }
                Replay::KeyReuse => return Err(StoreError::KeyReuse),
                Replay::Fresh => {}
            }
        }
        let event = tx
            .lock_event(req.event)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (from, to) = booking::trip_year(event.draft.starts_at);
        let tail = tx.waitlist_tail(event.id).await?;
        let snapshot = BookSnapshot {
            held: tx.held_counts(event.id).await?,
            waitlisted: tail.waitlisted,
            last_seq: tail.last_seq,
            active: tx.active_booking(event.id, req.user.id).await?,
            trips_this_year: tx
                .seats_held_in(req.user.id, event.draft.kind, from, to)
                .await?,
            membership: tx.active_membership(req.user.id).await?,
            event,
        };
        let decision = booking::book(&snapshot, req.user, BookingId::random(), at);
        tx.apply(&decision.effects).await?;
        if let Some(key) = req.key {
            let record = IdempotencyRecord {
                request_hash: req.request_hash.to_owned(),
                body: serde_json::to_string(&decision.outcome).expect("an outcome serializes"),
                created_at: at,
            };
            tx.put_idempotency(req.user.id, key, &record).await?;
        }
        tx.commit().await?;
        Ok(Booked {
            outcome: decision.outcome,
            replayed: false,
        })
    }

    /// Cancel a booking; a seat it held passes on in the same transaction.
    pub async fn cancel_booking(
        &self,
        id: BookingId,
        by: Canceller,
        at: DateTime<Utc>,
    ) -> Result<Cancelled, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let event = event_of(&mut tx, id).await?;
        let state = event_state(&mut tx, event, Scope::One(id)).await?;
        let decision = booking::cancel(state, id, by, at)?;
        commit(tx, decision).await
    }

    /// Accept an offered seat before it lapses.
    pub async fn accept_offer(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<BookingRecord, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let event = event_of(&mut tx, id).await?;
        let state = event_state(&mut tx, event, Scope::One(id)).await?;
        let decision = booking::accept(state, id, at)?;
        commit(tx, decision).await
    }

    /// Check booking `id` in at `event`'s door.
    pub async fn check_in(
        &self,
        event: EventId,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<CheckIn, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let ev: Event = tx.lock_event(event).await?.ok_or(StoreError::NotFound)?;
        let b = tx.booking(id).await?.ok_or(StoreError::NotFound)?;
        let decision = booking::check_in(&ev, b, at)?;
        commit(tx, decision).await
    }

    /// Offers of `event` past their deadline lapse, each seat passing on.
    /// Returns how many lapsed (0 when another process got there first).
    pub async fn lapse_offers(&self, event: EventId, at: DateTime<Utc>) -> Result<u32, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let state = event_state(&mut tx, event, Scope::Statuses(&[BookingStatus::Offered])).await?;
        let decision = booking::lapse_offers(state, at);
        commit(tx, decision).await
    }

    /// After `event` has ended, its unchecked confirmed bookings become
    /// no-shows and the event is settled. Returns how many were marked.
    pub async fn mark_no_shows(
        &self,
        event: EventId,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let state =
            event_state(&mut tx, event, Scope::Statuses(&[BookingStatus::Confirmed])).await?;
        let decision = booking::mark_no_shows(state, at);
        commit(tx, decision).await
    }

    /// Remind `event`'s seat holders `lead` before its start, once.
    pub async fn remind(
        &self,
        event: EventId,
        lead: chrono::Duration,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let state = event_state(
            &mut tx,
            event,
            Scope::Statuses(&[BookingStatus::Confirmed, BookingStatus::Offered]),
        )
        .await?;
        let sent = tx.reminded(event, lead.num_hours() as u32).await?;
        let decision = booking::remind(&state, lead, sent, at);
        commit(tx, decision).await
    }

    /// Edit an event, all or nothing (see [`booking::edit_event`]).
    pub async fn edit_event(
        &self,
        id: EventId,
        patch: &EventPatch,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let state = event_state(
            &mut tx,
            id,
            Scope::Statuses(&[
                BookingStatus::Confirmed,
                BookingStatus::Waitlisted,
                BookingStatus::Offered,
            ]),
        )
        .await?;
        let decision = booking::edit_event(state, patch, at)?;
        commit(tx, decision).await
    }

    /// Record a code request and store the new code's hash, unless a rate
    /// limit is hit: then nothing is stored and the wait until a request
    /// would pass is returned.
    pub async fn request_otp(
        &self,
        req: OtpRequest<'_>,
    ) -> Result<Result<(), Duration>, StoreError> {
        let at = req.at;
        let mut tx = self.begin().await?;
        let mut wait = Duration::ZERO;
        for (by, limits) in [
            (OtpRequester::Phone(req.phone), req.phone_limits),
            (OtpRequester::Ip(req.ip), req.ip_limits),
        ] {
            let (window, count) = otp::lookback(limits);
            let since = at - chrono::Duration::from_std(window).unwrap_or_default();
            let recent = tx.otp_requests(by, since, count).await?;
            if let Some(w) = otp::rate_limit(&recent, limits, at) {
                wait = wait.max(w);
            }
        }
        if !wait.is_zero() {
            return Ok(Err(wait));
        }
        let code = StoredCode {
            code_hash: req.code_hash.to_owned(),
            expires_at: at + chrono::Duration::from_std(req.ttl).unwrap_or_default(),
            attempts: 0,
            dev_code: req.dev_code.map(str::to_owned),
        };
        let forget = at - chrono::Duration::from_std(OTP_REQUEST_MEMORY).unwrap_or_default();
        tx.put_otp(req.phone, req.ip, at, &code, forget).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Check a code; a right one is consumed, a wrong one counts against `max_attempts`.
    pub async fn check_otp(
        &self,
        phone: &Phone,
        code_hash: &str,
        at: DateTime<Utc>,
        max_attempts: i64,
    ) -> Result<OtpCheck, StoreError> {
        let mut tx = self.begin().await?;
        let stored = tx.stored_code(phone).await?;
        let (outcome, effect) = otp::check_code(stored.as_ref(), code_hash, at, max_attempts);
        if let Some(effect) = effect {
            tx.apply_code(phone, effect).await?;
            tx.commit().await?;
        }
        Ok(outcome)
    }

    /// The development code pending for `phone` (`yizhan admin code`), if any.
    pub async fn pending_dev_code(
        &self,
        phone: &Phone,
        at: DateTime<Utc>,
        max_attempts: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.begin().await?;
        let stored = tx.stored_code(phone).await?;
        tx.commit().await?;
        Ok(otp::pending_dev_code(stored.as_ref(), at, max_attempts).map(str::to_owned))
    }
}
