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

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::keyed::{self, Keyed};
use super::writer::Writer;
use super::{OTP_REQUEST_MEMORY, OtpRequester, Store, StoreError, WriteTx};
use crate::domain::application::{
    self, Applicant, ApplicationId, ApplicationRecord, ApplyOutcome, ApplySnapshot, DrawOutcome,
    DrawSnapshot,
};
use crate::domain::booking::{
    self, BookingRecord, Cancelled, Canceller, CheckIn, Decision, Effect, EventPatch, EventState,
};
use crate::domain::event::{BookOutcome, BookingId, BookingStatus, Event, EventId};
use crate::domain::otp::{self, OtpCheck, StoredCode};
use crate::domain::user::{Phone, User, UserId};

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
        applications: vec![],
    })
}

/// The event a booking belongs to, read outside any transaction would race:
/// read the booking in the transaction first.
async fn event_of(tx: &mut Box<dyn WriteTx>, id: BookingId) -> Result<EventId, StoreError> {
    Ok(tx.booking(id).await?.ok_or(StoreError::NotFound)?.event)
}

/// A command on events and bookings, owned, as the writer queues it.
#[derive(Debug, Clone)]
pub enum Command {
    Book(Box<BookCommand>),
    Cancel {
        id: BookingId,
        by: Canceller,
        at: DateTime<Utc>,
    },
    Accept {
        id: BookingId,
        at: DateTime<Utc>,
    },
    CheckIn {
        event: EventId,
        id: BookingId,
        at: DateTime<Utc>,
    },
    LapseOffers {
        event: EventId,
        at: DateTime<Utc>,
    },
    MarkNoShows {
        event: EventId,
        at: DateTime<Utc>,
    },
    Remind {
        event: EventId,
        lead: chrono::Duration,
        at: DateTime<Utc>,
    },
    EditEvent {
        id: EventId,
        patch: Box<EventPatch>,
        at: DateTime<Utc>,
    },
    /// Apply for a draw (an [`ApplyRequest`]).
    Apply(Box<ApplyCommand>),
    /// Withdraw an application, by `user` (its holder).
    Withdraw {
        id: ApplicationId,
        user: UserId,
        at: DateTime<Utc>,
    },
    /// Make `event`'s draw if it is due and not made.
    Draw {
        event: EventId,
        at: DateTime<Utc>,
    },
}

/// An application, owned.
#[derive(Debug, Clone)]
pub struct ApplyCommand {
    pub user: User,
    pub event: EventId,
    pub key: Option<String>,
    pub request_hash: String,
    pub at: DateTime<Utc>,
}

/// What an application came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub outcome: ApplyOutcome,
    /// The answer is a replay of the first request with this key.
    pub replayed: bool,
}

/// A booking attempt, owned ([`BookRequest`] borrows).
#[derive(Debug, Clone)]
pub struct BookCommand {
    pub user: User,
    pub event: EventId,
    pub key: Option<String>,
    pub request_hash: String,
    pub at: DateTime<Utc>,
}

impl From<BookRequest<'_>> for BookCommand {
    fn from(r: BookRequest<'_>) -> BookCommand {
        BookCommand {
            user: r.user.clone(),
            event: r.event,
            key: r.key.map(str::to_owned),
            request_hash: r.request_hash.to_owned(),
            at: r.at,
        }
    }
}

impl Command {
    /// The event the command acts on, when the command names it.
    pub fn event(&self) -> Option<EventId> {
        match self {
            Command::Book(b) => Some(b.event),
            Command::CheckIn { event, .. }
            | Command::LapseOffers { event, .. }
            | Command::MarkNoShows { event, .. }
            | Command::Remind { event, .. } => Some(*event),
            Command::EditEvent { id, .. } => Some(*id),
            Command::Apply(a) => Some(a.event),
            Command::Draw { event, .. } => Some(*event),
            Command::Cancel { .. } | Command::Accept { .. } | Command::Withdraw { .. } => None,
        }
    }
}

/// What a command came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Booked(Booked),
    Cancelled(Cancelled),
    /// The booking as it now is (an accepted offer).
    Booking(BookingRecord),
    CheckedIn(CheckIn),
    /// How many bookings a worker's job moved (or reminded).
    Count(u32),
    /// The event as edited.
    Event(Event),
    Applied(Applied),
    /// The application as it now is (withdrawn).
    Application(ApplicationRecord),
    Drawn(DrawOutcome),
}

/// Decide a command other than a booking on the snapshot read through `tx`:
/// its answer and the effects to write. An error here has written nothing.
pub(crate) async fn decide(
    tx: &mut Box<dyn WriteTx>,
    cmd: &Command,
) -> Result<(Answer, Vec<Effect>), StoreError> {
    fn done<T>(d: Decision<T>, f: impl FnOnce(T) -> Answer) -> (Answer, Vec<Effect>) {
        (f(d.outcome), d.effects)
    }
    Ok(match cmd {
        Command::Book(_) => {
            return Err(StoreError::Corrupt(
                "a booking is decided by the batch".into(),
            ));
        }
        Command::Cancel { id, by, at } => {
            let at = super::micros(*at);
            let event = event_of(tx, *id).await?;
            let state = event_state(tx, event, Scope::One(*id)).await?;
            done(booking::cancel(state, *id, *by, at)?, Answer::Cancelled)
        }
        Command::Accept { id, at } => {
            let at = super::micros(*at);
            let event = event_of(tx, *id).await?;
            let state = event_state(tx, event, Scope::One(*id)).await?;
            done(booking::accept(state, *id, at)?, Answer::Booking)
        }
        Command::CheckIn { event, id, at } => {
            let at = super::micros(*at);
            let ev: Event = tx.lock_event(*event).await?.ok_or(StoreError::NotFound)?;
            let b = tx.booking(*id).await?.ok_or(StoreError::NotFound)?;
            done(booking::check_in(&ev, b, at)?, Answer::CheckedIn)
        }
        Command::LapseOffers { event, at } => {
            let at = super::micros(*at);
            let state = event_state(tx, *event, Scope::Statuses(&[BookingStatus::Offered])).await?;
            done(booking::lapse_offers(state, at), Answer::Count)
        }
        Command::MarkNoShows { event, at } => {
            let at = super::micros(*at);
            let state =
                event_state(tx, *event, Scope::Statuses(&[BookingStatus::Confirmed])).await?;
            done(booking::mark_no_shows(state, at), Answer::Count)
        }
        Command::Remind { event, lead, at } => {
            let at = super::micros(*at);
            let state = event_state(
                tx,
                *event,
                Scope::Statuses(&[BookingStatus::Confirmed, BookingStatus::Offered]),
            )
            .await?;
            let sent = tx.reminded(*event, lead.num_hours() as u32).await?;
            done(booking::remind(&state, *lead, sent, at), Answer::Count)
        }
        Command::EditEvent { id, patch, at } => {
            let at = super::micros(*at);
            let state = event_state(
                tx,
                *id,
                Scope::Statuses(&[
                    BookingStatus::Confirmed,
                    BookingStatus::Waitlisted,
                    BookingStatus::Offered,
                ]),
            )
            .await?;
            let mut state = state;
            if state.event.draft.draw.is_some() && state.event.drawn_at().is_none() {
                state.applications = tx.waiting_applications(*id).await?;
            }
            done(booking::edit_event(state, patch, at)?, Answer::Event)
        }
        Command::Apply(c) => return apply(tx, c).await,
        Command::Withdraw { id, user, at } => {
            let at = super::micros(*at);
            let a = tx.application_in(*id).await?.ok_or(StoreError::NotFound)?;
            if a.user != *user {
                return Err(StoreError::NotFound);
            }
            let ev = tx.lock_event(a.event).await?.ok_or(StoreError::NotFound)?;
            done(application::withdraw(&ev, a, at)?, Answer::Application)
        }
        Command::Draw { event, at } => {
            let at = super::micros(*at);
            let state = event_state(tx, *event, Scope::Statuses(&[])).await?;
            if state.event.drawn_at().is_some() || state.event.draft.draw.is_none() {
                // Made already (another node got there first): read no more.
                return Ok((Answer::Drawn(DrawOutcome::AlreadyDrawn), vec![]));
            }
            let secret = tx
                .draw_secret(*event)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("draw event {event} has no secret")))?;
            let secret = crate::domain::draw::unhex(&secret)
                .ok_or_else(|| StoreError::Corrupt(format!("draw event {event}'s secret")))?;
            let d = &state.event.draft;
            let groups = &d.draw.as_ref().expect("checked").priority_groups;
            let need_member =
                d.eligibility.union_members_only || groups.iter().any(|g| g.union_member.is_some());
            let (from, to) = booking::trip_year(d.starts_at);
            let (kind, need_trips) = (d.kind, d.eligibility.max_per_year.is_some());
            let mut applicants = Vec::new();
            for (a, user) in tx.applicants_in(*event).await? {
                let member = need_member && tx.active_membership(user.id).await?.is_some();
                let trips = if need_trips {
                    tx.seats_held_in(user.id, kind, from, to).await?
                } else {
                    0
                };
                applicants.push(Applicant {
                    application: a,
                    user,
                    member,
                    trips_this_year: trips,
                });
            }
            let snapshot = DrawSnapshot {
                state,
                secret,
                applicants,
            };
            done(
                application::run_draw(snapshot, BookingId::random, at),
                Answer::Drawn,
            )
        }
    })
}

/// Decide an application: a keyed retry replays the first answer.
async fn apply(
    tx: &mut Box<dyn WriteTx>,
    c: &ApplyCommand,
) -> Result<(Answer, Vec<Effect>), StoreError> {
    let at = super::micros(c.at);
    let key = c.key.as_ref().map(|key| Keyed {
        user: c.user.id,
        key: key.clone(),
        request_hash: c.request_hash.clone(),
    });
    if let Some(body) = keyed::earlier(tx, key.as_ref(), at).await? {
        let outcome = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("a stored answer: {e}")))?;
        return Ok((
            Answer::Applied(Applied {
                outcome,
                replayed: true,
            }),
            vec![],
        ));
    }
    let event = tx.lock_event(c.event).await?.ok_or(StoreError::NotFound)?;
    let d = &event.draft;
    let membership = if d.eligibility.union_members_only {
        tx.active_membership(c.user.id).await?
    } else {
        None
    };
    let trips_this_year = if d.eligibility.max_per_year.is_some() {
        let (from, to) = booking::trip_year(d.starts_at);
        tx.seats_held_in(c.user.id, d.kind, from, to).await?
    } else {
        0
    };
    let snapshot = ApplySnapshot {
        mine: tx.application_of(c.event, c.user.id).await?,
        event,
        membership,
        trips_this_year,
    };
    let d = application::apply(&snapshot, &c.user, ApplicationId::random(), at);
    if key.is_some() {
        let body = serde_json::to_string(&d.outcome).expect("an outcome serializes");
        keyed::remember(tx, key.as_ref(), &body, at).await?;
    }
    Ok((
        Answer::Applied(Applied {
            outcome: d.outcome,
            replayed: false,
        }),
        d.effects,
    ))
}

/// The answer of the kind a command gives, or a corrupt-answer error.
macro_rules! expect_answer {
    ($answer:expr, $variant:ident) => {
        match $answer? {
            Answer::$variant(v) => Ok(v),
            other => Err(StoreError::Corrupt(format!("unexpected answer {other:?}"))),
        }
    };
}

/// The commands on events and bookings, typed. Two runners give them: the
/// store itself (each command a batch of one, its own transaction) and the
/// [`Writer`] (queued, batched with whatever else is waiting).
#[async_trait]
pub trait Commands: Sync {
    /// Run a command and answer it after its commit.
    async fn run_command(&self, cmd: Command) -> Result<Answer, StoreError>;

    /// Decide and record a booking attempt. With a key, a retry within 24 h
    /// gets the stored outcome back (`replayed`), and a different request
    /// with the same key is `KeyReuse`.
    async fn book(&self, req: BookRequest<'_>) -> Result<Booked, StoreError> {
        let cmd = Command::Book(Box::new(req.into()));
        expect_answer!(self.run_command(cmd).await, Booked)
    }

    /// Cancel a booking; a seat it held passes on in the same transaction.
    async fn cancel_booking(
        &self,
        id: BookingId,
        by: Canceller,
        at: DateTime<Utc>,
    ) -> Result<Cancelled, StoreError> {
        expect_answer!(
            self.run_command(Command::Cancel { id, by, at }).await,
            Cancelled
        )
    }

    /// Accept an offered seat before it lapses.
    async fn accept_offer(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<BookingRecord, StoreError> {
        expect_answer!(self.run_command(Command::Accept { id, at }).await, Booking)
    }

    /// Check booking `id` in at `event`'s door.
    async fn check_in(
        &self,
        event: EventId,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<CheckIn, StoreError> {
        expect_answer!(
            self.run_command(Command::CheckIn { event, id, at }).await,
            CheckedIn
        )
    }

    /// Offers of `event` past their deadline lapse, each seat passing on.
    /// Returns how many lapsed (0 when another process got there first).
    async fn lapse_offers(&self, event: EventId, at: DateTime<Utc>) -> Result<u32, StoreError> {
        expect_answer!(
            self.run_command(Command::LapseOffers { event, at }).await,
            Count
        )
    }

    /// After `event` has ended, its unchecked confirmed bookings become
    /// no-shows and the event is settled. Returns how many were marked.
    async fn mark_no_shows(&self, event: EventId, at: DateTime<Utc>) -> Result<u32, StoreError> {
        expect_answer!(
            self.run_command(Command::MarkNoShows { event, at }).await,
            Count
        )
    }

    /// Remind `event`'s seat holders `lead` before its start, once.
    async fn remind(
        &self,
        event: EventId,
        lead: chrono::Duration,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        expect_answer!(
            self.run_command(Command::Remind { event, lead, at }).await,
            Count
        )
    }

    /// Apply for a draw; a keyed retry within 24 h gets the first answer back.
    async fn apply(&self, c: ApplyCommand) -> Result<Applied, StoreError> {
        expect_answer!(self.run_command(Command::Apply(Box::new(c))).await, Applied)
    }

    /// Withdraw `user`'s application `id` before the window closes.
    async fn withdraw(
        &self,
        id: ApplicationId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<ApplicationRecord, StoreError> {
        expect_answer!(
            self.run_command(Command::Withdraw { id, user, at }).await,
            Application
        )
    }

    /// Make `event`'s draw if due; exactly once, whichever node asks.
    async fn draw(&self, event: EventId, at: DateTime<Utc>) -> Result<DrawOutcome, StoreError> {
        expect_answer!(self.run_command(Command::Draw { event, at }).await, Drawn)
    }

    /// Edit an event, all or nothing (see [`booking::edit_event`]).
    async fn edit_event(
        &self,
        id: EventId,
        patch: &EventPatch,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let patch = Box::new(patch.clone());
        expect_answer!(
            self.run_command(Command::EditEvent { id, patch, at }).await,
            Event
        )
    }
}

#[async_trait]
impl Commands for dyn Store {
    async fn run_command(&self, cmd: Command) -> Result<Answer, StoreError> {
        super::batch::run(self, std::slice::from_ref(&cmd))
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "a batch of one answered nothing".into(),
                ))
            })
    }
}

/// A shared store or writer runs commands as what it points to does.
#[async_trait]
impl<T: Commands + Send + ?Sized> Commands for std::sync::Arc<T> {
    async fn run_command(&self, cmd: Command) -> Result<Answer, StoreError> {
        (**self).run_command(cmd).await
    }
}

#[async_trait]
impl Commands for Writer {
    async fn run_command(&self, cmd: Command) -> Result<Answer, StoreError> {
        self.run(cmd).await
    }
}

impl dyn Store {
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
