//! The booking rules, decided once: every command on events and bookings is a
//! pure function of a snapshot (read by the store inside the command's
//! transaction), the command and the time. It answers with an outcome and the
//! [`Effect`]s that make it true — rows to insert, transitions to log, the
//! event row to save. The store applies the effects in order and commits; a
//! second database ports the reading and the applying, never these rules.
//!
//! Invariants every command keeps (checked by the property test below after
//! every step of random command sequences):
//! - seats held (confirmed, offered, checked in) never exceed the capacity,
//!   nor a quota's seats, nor the seats no quota reserves;
//! - the event's `held` counter equals the bookings holding a seat;
//! - waitlist positions are 1..n in arrival order, without gaps;
//! - before the event ends, no waitlisted person fits a free seat: a seat
//!   freed goes at once to the first waitlisted person it fits (confirmed, or
//!   offered for `offer_hours`).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

use super::event::{
    BookOutcome, Booking, BookingId, BookingStatus, Event, EventDraft, EventId, EventStatus, Quota,
};
use super::hours::SHANGHAI;
use super::user::{User, UserId};

/// A booking as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRecord {
    pub id: BookingId,
    pub event: EventId,
    pub user: UserId,
    pub status: BookingStatus,
    /// The quota the seat counts against (`gender=female`), if any.
    pub quota: Option<String>,
    /// Arrival order on the waitlist (set when the booking was waitlisted).
    pub waitlist_seq: Option<i64>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl BookingRecord {
    /// The booking as the API shows it, with its waitlist position if waitlisted.
    pub fn to_api(&self, waitlist_position: Option<u32>) -> Booking {
        Booking {
            id: self.id.to_string(),
            event_id: self.event.to_string(),
            status: self.status,
            waitlist_position: (self.status == BookingStatus::Waitlisted)
                .then_some(waitlist_position)
                .flatten(),
            quota: self.quota.clone(),
            offer_expires_at: self.offer_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            checkin_code: None,
        }
    }
}

/// A waitlisted booking, as promotion needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: BookingId,
    pub user: UserId,
    pub quota: Option<String>,
    pub seq: i64,
}

/// Seats held in an event, by quota key (`None`: outside every quota).
pub type HeldCounts = BTreeMap<Option<String>, u32>;

/// Why a command was refused. A refused command has no effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The booking or event is not in a state that allows this.
    WrongState(String),
    /// A value is not acceptable; `field` names it for the client.
    Invalid { field: &'static str, detail: String },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::WrongState(why) => f.write_str(why),
            Refused::Invalid { field, detail } => write!(f, "{field}: {detail}"),
        }
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> Refused {
    Refused::Invalid {
        field,
        detail: detail.into(),
    }
}

/// A change of a booking's status: the one way a booking changes after it is
/// made. The store writes it and logs it (`booking_log`) in one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub booking: BookingId,
    pub event: EventId,
    pub user: UserId,
    pub from: BookingStatus,
    pub to: BookingStatus,
    pub at: DateTime<Utc>,
    /// The offer's deadline when `to` is `offered`; cleared otherwise.
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// Set when `to` is `checked_in`.
    pub checked_in_at: Option<DateTime<Utc>>,
    /// Why, for the log: "promoted from the waitlist", "offer lapsed", …
    pub note: Option<&'static str>,
}

/// What a command asks the store to write, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A new booking (its first status is logged with it).
    Insert(BookingRecord),
    /// A booking moves from one status to another (the store checks it is
    /// still in `from`, so a stale snapshot can never be applied).
    Transition(Transition),
    /// Write the event row as given: content, status, version, `held`.
    SaveEvent(Event),
}

/// A command's outcome and the effects that make it true.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<T> {
    pub outcome: T,
    pub effects: Vec<Effect>,
}

/// What a booking attempt needs to know, read in its transaction.
#[derive(Debug, Clone)]
pub struct BookSnapshot {
    pub event: Event,
    pub held: HeldCounts,
    /// How many are waitlisted, and the last arrival number given.
    pub waitlisted: u32,
    pub last_seq: i64,
    /// The person's active booking for this event, if any.
    pub active: Option<BookingId>,
    /// The person's seat-holding bookings of the event's kind in the event's
    /// calendar year (see [`trip_year`]).
    pub trips_this_year: u32,
}

/// An event as commands that may move seats see it, read in their transaction.
#[derive(Debug, Clone)]
pub struct EventState {
    pub event: Event,
    pub held: HeldCounts,
    /// Waitlisted bookings in arrival order.
    pub waitlist: Vec<Waiting>,
    /// The bookings the command acts on (the one cancelled, the offers, the
    /// confirmed ones…), as the store was asked to read them.
    pub bookings: Vec<BookingRecord>,
}

/// Who asks for a cancellation: the holder is bound by the cancel deadline,
/// the event's managers are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceller {
    Holder,
    Manager,
}

/// `[from, to)`: the Shanghai calendar year an event starting at `starts_at`
/// counts in for `max_per_year`.
pub fn trip_year(starts_at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let year = starts_at.with_timezone(&SHANGHAI).year();
    let jan1 = |y| {
        SHANGHAI
            .with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .expect("a fixed offset has no gaps")
            .with_timezone(&Utc)
    };
    (jan1(year), jan1(year + 1))
}

/// Is a seat free for someone in quota `key`?
pub fn seat_for(event: &Event, held: &HeldCounts, key: Option<&str>) -> bool {
    let d = &event.draft;
    if event.held >= d.capacity {
        return false;
    }
    if d.quotas.is_empty() {
        return true;
    }
    let limit = match key {
        Some(k) => d
            .quotas
            .iter()
            .filter(|q| q.key() == k)
            .map(|q| q.seats)
            .sum::<u32>(),
        None => d.capacity - d.quotas.iter().map(|q| q.seats).sum::<u32>(),
    };
    held.get(&key.map(str::to_owned)).copied().unwrap_or(0) < limit
}

/// Waitlist positions (1-based) of waitlisted bookings, by arrival order.
pub fn waitlist_positions<'a>(
    bookings: impl IntoIterator<Item = &'a BookingRecord>,
) -> BTreeMap<BookingId, u32> {
    let mut waiting: Vec<(i64, BookingId)> = bookings
        .into_iter()
        .filter(|b| b.status == BookingStatus::Waitlisted)
        .map(|b| (b.waitlist_seq.unwrap_or(i64::MAX), b.id))
        .collect();
    waiting.sort_unstable();
    waiting
        .into_iter()
        .enumerate()
        .map(|(i, (_, id))| (id, i as u32 + 1))
        .collect()
}

/// A booking attempt by `user`; `id` is the new booking's id should one be made.
pub fn book(
    s: &BookSnapshot,
    user: &User,
    id: BookingId,
    now: DateTime<Utc>,
) -> Decision<BookOutcome> {
    let refuse = |outcome| Decision {
        outcome,
        effects: vec![],
    };
    let d = &s.event.draft;
    if d.status != EventStatus::Published {
        return refuse(BookOutcome::NotOpen {
            detail: format!("the event is {}", d.status.as_str()),
        });
    }
    if now < d.booking_opens_at {
        return refuse(BookOutcome::OutsideWindow {
            detail: format!("booking opens at {}", d.booking_opens_at.to_rfc3339()),
        });
    }
    if now >= d.booking_closes_at {
        return refuse(BookOutcome::OutsideWindow {
            detail: format!("booking closed at {}", d.booking_closes_at.to_rfc3339()),
        });
    }
    if let Some(b) = s.active {
        return refuse(BookOutcome::AlreadyBooked {
            booking_id: b.to_string(),
        });
    }
    if let Err(r) = d
        .eligibility
        .check(&user.profile, d.starts_at, s.trips_this_year)
    {
        return refuse(BookOutcome::NotEligible {
            rule: r.rule.to_owned(),
            detail: r.detail,
        });
    }
    let quota = Quota::key_for(&d.quotas, &user.profile);
    let (status, seq, position) = if seat_for(&s.event, &s.held, quota.as_deref()) {
        (BookingStatus::Confirmed, None, None)
    } else if d.waitlist {
        (
            BookingStatus::Waitlisted,
            Some(s.last_seq + 1),
            Some(s.waitlisted + 1),
        )
    } else {
        return refuse(BookOutcome::Full);
    };
    let record = BookingRecord {
        id,
        event: s.event.id,
        user: user.id,
        status,
        quota,
        waitlist_seq: seq,
        offer_expires_at: None,
        checked_in_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut effects = vec![Effect::Insert(record.clone())];
    if status.holds_seat() {
        let mut event = s.event.clone();
        event.held += 1;
        effects.push(Effect::SaveEvent(event));
    }
    Decision {
        outcome: BookOutcome::Booked {
            booking: record.to_api(position),
        },
        effects,
    }
}

/// A command under way on an [`EventState`]: it moves seats in the snapshot as
/// it records the effects, so later steps (the next promotion) see earlier ones.
struct Run {
    state: EventState,
    effects: Vec<Effect>,
    now: DateTime<Utc>,
    event_changed: bool,
}

impl Run {
    fn new(state: EventState, now: DateTime<Utc>) -> Run {
        Run {
            state,
            effects: Vec::new(),
            now,
            event_changed: false,
        }
    }

    fn holds(&mut self, quota: &Option<String>, delta: i32) {
        let n = self.state.held.entry(quota.clone()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        self.state.event.held = self.state.event.held.saturating_add_signed(delta);
        self.event_changed = true;
    }

    /// Move booking `b` to `to`, keeping the seat counts in step.
    fn transition(
        &mut self,
        b: &BookingRecord,
        to: BookingStatus,
        offer_expires_at: Option<DateTime<Utc>>,
        note: Option<&'static str>,
    ) -> BookingRecord {
        match (b.status.holds_seat(), to.holds_seat()) {
            (true, false) => self.holds(&b.quota, -1),
            (false, true) => self.holds(&b.quota, 1),
            _ => {}
        }
        let checked_in_at = (to == BookingStatus::CheckedIn).then_some(self.now);
        self.effects.push(Effect::Transition(Transition {
            booking: b.id,
            event: b.event,
            user: b.user,
            from: b.status,
            to,
            at: self.now,
            offer_expires_at,
            checked_in_at,
            note,
        }));
        let mut after = b.clone();
        after.status = to;
        after.offer_expires_at = offer_expires_at;
        after.checked_in_at = checked_in_at.or(b.checked_in_at);
        after.updated_at = self.now;
        if let Some(mine) = self.state.bookings.iter_mut().find(|x| x.id == b.id) {
            *mine = after.clone();
        }
        after
    }

    /// Give free seats to the first waitlisted people they fit, in arrival
    /// order, until no waitlisted person fits. Never after the event has ended.
    fn promote(&mut self) -> Vec<BookingId> {
        let mut promoted = Vec::new();
        if self.state.event.draft.ends_at <= self.now
            || self.state.event.draft.status == EventStatus::Cancelled
        {
            return promoted;
        }
        while let Some(i) = self
            .state
            .waitlist
            .iter()
            .position(|w| seat_for(&self.state.event, &self.state.held, w.quota.as_deref()))
        {
            let w = self.state.waitlist.remove(i);
            let (to, offer) = match self.state.event.draft.offer_hours {
                Some(h) => (
                    BookingStatus::Offered,
                    Some(self.now + Duration::hours(i64::from(h))),
                ),
                None => (BookingStatus::Confirmed, None),
            };
            let record = BookingRecord {
                id: w.id,
                event: self.state.event.id,
                user: w.user,
                status: BookingStatus::Waitlisted,
                quota: w.quota,
                waitlist_seq: Some(w.seq),
                offer_expires_at: None,
                checked_in_at: None,
                created_at: self.now,
                updated_at: self.now,
            };
            self.transition(&record, to, offer, Some("promoted from the waitlist"));
            promoted.push(w.id);
        }
        promoted
    }

    fn booking(&self, id: BookingId) -> Result<BookingRecord, Refused> {
        self.state
            .bookings
            .iter()
            .find(|b| b.id == id)
            .cloned()
            .ok_or_else(|| Refused::WrongState(format!("booking {id} is not part of this event")))
    }

    fn finish<T>(mut self, outcome: T) -> Decision<T> {
        if self.event_changed {
            self.effects
                .push(Effect::SaveEvent(self.state.event.clone()));
        }
        Decision {
            outcome,
            effects: self.effects,
        }
    }
}

/// The outcome of a cancellation: the booking as it now is, and whom the
/// freed seat went to.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    pub booking: BookingRecord,
    pub promoted: Vec<BookingId>,
}

/// Cancel booking `id` (in `s.bookings`). Cancelling a cancelled booking
/// changes nothing; a freed seat passes on at once.
pub fn cancel(
    s: EventState,
    id: BookingId,
    by: Canceller,
    now: DateTime<Utc>,
) -> Result<Decision<Cancelled>, Refused> {
    let mut run = Run::new(s, now);
    let b = run.booking(id)?;
    if b.status == BookingStatus::Cancelled {
        return Ok(run.finish(Cancelled {
            booking: b,
            promoted: vec![],
        }));
    }
    let deadline = run.state.event.draft.cancel_deadline;
    if by == Canceller::Holder && now >= deadline {
        return Err(invalid(
            "cancel_deadline",
            format!("cancellations closed at {}", deadline.to_rfc3339()),
        ));
    }
    if matches!(b.status, BookingStatus::CheckedIn | BookingStatus::NoShow) {
        return Err(Refused::WrongState(format!(
            "the booking is {}",
            b.status.as_str()
        )));
    }
    if b.status == BookingStatus::Waitlisted {
        run.state.waitlist.retain(|w| w.id != b.id);
    }
    let booking = run.transition(&b, BookingStatus::Cancelled, None, None);
    let promoted = run.promote();
    Ok(run.finish(Cancelled { booking, promoted }))
}

/// Accept the seat offered to booking `id` before its offer lapses.
pub fn accept(
    s: EventState,
    id: BookingId,
    now: DateTime<Utc>,
) -> Result<Decision<BookingRecord>, Refused> {
    let mut run = Run::new(s, now);
    let b = run.booking(id)?;
    if b.status != BookingStatus::Offered {
        return Err(Refused::WrongState(format!(
            "the booking is {}, not offered",
            b.status.as_str()
        )));
    }
    if b.offer_expires_at.is_some_and(|t| t <= now) {
        return Err(Refused::WrongState(format!(
            "the offer lapsed at {}",
            b.offer_expires_at.expect("checked").to_rfc3339()
        )));
    }
    let b = run.transition(&b, BookingStatus::Confirmed, None, Some("offer accepted"));
    Ok(run.finish(b))
}

/// Offers past their deadline lapse (cancelled), each seat passing on.
/// `s.bookings` holds the event's offers. Returns how many lapsed.
pub fn lapse_offers(s: EventState, now: DateTime<Utc>) -> Decision<u32> {
    let mut run = Run::new(s, now);
    let mut due: Vec<BookingRecord> = run
        .state
        .bookings
        .iter()
        .filter(|b| {
            b.status == BookingStatus::Offered && b.offer_expires_at.is_some_and(|t| t <= now)
        })
        .cloned()
        .collect();
    due.sort_by_key(|b| (b.offer_expires_at, b.id));
    for b in &due {
        run.transition(b, BookingStatus::Cancelled, None, Some("offer lapsed"));
        run.promote();
    }
    run.finish(due.len() as u32)
}

/// After the event has ended, confirmed bookings never checked in become
/// no-shows. `s.bookings` holds the event's confirmed bookings. Marks the
/// event settled so the worker does not look at it again.
pub fn mark_no_shows(s: EventState, now: DateTime<Utc>) -> Decision<u32> {
    let mut run = Run::new(s, now);
    if run.state.event.draft.ends_at > now {
        return run.finish(0);
    }
    let confirmed: Vec<BookingRecord> = run
        .state
        .bookings
        .iter()
        .filter(|b| b.status == BookingStatus::Confirmed)
        .cloned()
        .collect();
    for b in &confirmed {
        run.transition(
            b,
            BookingStatus::NoShow,
            None,
            Some("not checked in by the end"),
        );
    }
    if run.state.event.settled_at.is_none() {
        run.state.event.settled_at = Some(now);
        run.event_changed = true;
    }
    run.finish(confirmed.len() as u32)
}

/// A check-in at the door: the first scan checks in, a later one says when
/// the first was.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckIn {
    pub booking: BookingRecord,
    /// When the booking was first checked in.
    pub checked_in_at: DateTime<Utc>,
    pub already: bool,
}

/// Check booking `b` of `event` in.
pub fn check_in(
    event: &Event,
    b: BookingRecord,
    now: DateTime<Utc>,
) -> Result<Decision<CheckIn>, Refused> {
    if b.event != event.id {
        return Err(invalid("code", "this code is for another event"));
    }
    match (b.status, b.checked_in_at) {
        (BookingStatus::CheckedIn, Some(first)) => Ok(Decision {
            outcome: CheckIn {
                booking: b,
                checked_in_at: first,
                already: true,
            },
            effects: vec![],
        }),
        (BookingStatus::Confirmed, _) => {
            let mut after = b.clone();
            after.status = BookingStatus::CheckedIn;
            after.checked_in_at = Some(now);
            after.updated_at = now;
            Ok(Decision {
                outcome: CheckIn {
                    booking: after,
                    checked_in_at: now,
                    already: false,
                },
                effects: vec![Effect::Transition(Transition {
                    booking: b.id,
                    event: b.event,
                    user: b.user,
                    from: b.status,
                    to: BookingStatus::CheckedIn,
                    at: now,
                    offer_expires_at: None,
                    checked_in_at: Some(now),
                    note: None,
                })],
            })
        }
        (other, _) => Err(Refused::WrongState(format!(
            "the booking is {}",
            other.as_str()
        ))),
    }
}

/// The editable fields of an event; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub capacity: Option<u32>,
    pub booking_opens_at: Option<DateTime<Utc>>,
    pub booking_closes_at: Option<DateTime<Utc>>,
    pub cancel_deadline: Option<DateTime<Utc>>,
    pub waitlist: Option<bool>,
    pub status: Option<EventStatus>,
}

/// Edit an event, all or nothing: a larger capacity moves the waitlist up at
/// once; one below the seats held is refused; `status: cancelled` cancels
/// every active booking. `s.bookings` holds the event's active bookings.
pub fn edit_event(
    s: EventState,
    patch: &EventPatch,
    now: DateTime<Utc>,
) -> Result<Decision<Event>, Refused> {
    let mut run = Run::new(s, now);
    let cur = run.state.event.draft.clone();
    if let Some(status) = patch.status
        && cur.status == EventStatus::Cancelled
        && status != EventStatus::Cancelled
    {
        return Err(invalid("status", "a cancelled event stays cancelled"));
    }
    let mut d = cur.clone();
    let set = |slot: &mut DateTime<Utc>, v: Option<DateTime<Utc>>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    if let Some(t) = &patch.title {
        d.title = t.clone();
    }
    if let Some(t) = &patch.description {
        d.description = t.clone();
    }
    set(&mut d.starts_at, patch.starts_at);
    set(&mut d.ends_at, patch.ends_at);
    set(&mut d.booking_opens_at, patch.booking_opens_at);
    set(&mut d.booking_closes_at, patch.booking_closes_at);
    set(&mut d.cancel_deadline, patch.cancel_deadline);
    if let Some(c) = patch.capacity {
        d.capacity = c;
    }
    if let Some(w) = patch.waitlist {
        d.waitlist = w;
    }
    if let Some(st) = patch.status {
        d.status = st;
    }
    if d.quotas.iter().map(|q| u64::from(q.seats)).sum::<u64>() > u64::from(d.capacity) {
        return Err(invalid("capacity", "below the seats the quotas reserve"));
    }
    d.validate()
        .map_err(|(field, detail)| invalid(field, detail))?;
    if d.capacity < run.state.event.held {
        return Err(invalid(
            "capacity",
            format!(
                "capacity {} is below the {} seats already held",
                d.capacity, run.state.event.held
            ),
        ));
    }
    if d == cur {
        let unchanged = run.state.event.clone();
        return Ok(run.finish(unchanged));
    }
    run.state.event.draft = d;
    run.state.event.version += 1;
    run.state.event.updated_at = now;
    if run.state.event.draft.ends_at > now {
        // An event moved into the future is settled again when it next ends.
        run.state.event.settled_at = None;
    }
    run.event_changed = true;
    if run.state.event.draft.status == EventStatus::Cancelled
        && cur.status != EventStatus::Cancelled
    {
        let active: Vec<BookingRecord> = run
            .state
            .bookings
            .iter()
            .filter(|b| {
                matches!(
                    b.status,
                    BookingStatus::Confirmed | BookingStatus::Waitlisted | BookingStatus::Offered
                )
            })
            .cloned()
            .collect();
        for b in &active {
            run.transition(b, BookingStatus::Cancelled, None, Some("event cancelled"));
        }
        run.state.waitlist.clear();
    } else {
        run.promote();
    }
    let event = run.state.event.clone();
    Ok(run.finish(event))
}

impl EventDraft {
    /// The rules every event keeps, whether created or edited: the field
    /// that breaks one, and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.ends_at <= self.starts_at {
            return Err(("ends_at", "must be after starts_at".into()));
        }
        if self.booking_closes_at <= self.booking_opens_at {
            return Err(("booking_closes_at", "must be after booking_opens_at".into()));
        }
        if self.capacity == 0 {
            return Err(("capacity", "must be at least 1".into()));
        }
        if self.quotas.iter().map(|q| u64::from(q.seats)).sum::<u64>() > u64::from(self.capacity) {
            return Err(("quotas", "quota seats exceed the capacity".into()));
        }
        Ok(())
    }
}
