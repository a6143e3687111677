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

use super::application::ApplicationRecord;
use super::event::{
    BookOutcome, Booking, BookingId, BookingStatus, Event, EventDraft, EventId, EventStatus, Quota,
};
use super::hours::SHANGHAI;
use super::notify::{self, Notice};
use super::union::{MembershipRecord, MembershipStatus};
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
    /// Tell someone: an inbox entry and its deliveries, in the same
    /// transaction as its cause (the outbox).
    Notify(Notice),
    /// The reminder `lead_hours` before the event went out (so it goes once).
    Reminded {
        event: EventId,
        lead_hours: u32,
        at: DateTime<Utc>,
    },
    /// Write an application as given (a new one, or its new state).
    PutApplication(ApplicationRecord),
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
    /// The person's active union membership, if any: what
    /// `union_members_only` trusts.
    pub membership: Option<MembershipRecord>,
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
    /// An event edit of a draw event not yet drawn: the applications
    /// waiting for the draw (empty otherwise).
    pub applications: Vec<ApplicationRecord>,
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
    if d.draw.is_some() {
        return refuse(BookOutcome::ByDraw {
            detail: format!(
                "places are drawn at {}: apply with POST /v1/events/{}/applications",
                d.draw
                    .as_ref()
                    .map(|p| p.draw_at.to_rfc3339())
                    .unwrap_or_default(),
                s.event.id
            ),
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
    let member = s
        .membership
        .as_ref()
        .is_some_and(|m| m.user == user.id && m.status == MembershipStatus::Active);
    if let Err(r) = d
        .eligibility
        .check(&user.profile, member, d.starts_at, s.trips_this_year)
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
        effects.push(Effect::Notify(notify::booking_confirmed(
            user.id,
            &id.to_string(),
            &s.event,
            now,
        )));
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
pub(super) struct Run {
    pub(super) state: EventState,
    pub(super) effects: Vec<Effect>,
    pub(super) now: DateTime<Utc>,
    pub(super) event_changed: bool,
}

impl Run {
    pub(super) fn new(state: EventState, now: DateTime<Utc>) -> Run {
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
    pub(super) fn transition(
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
        let t = Transition {
            booking: b.id,
            event: b.event,
            user: b.user,
            from: b.status,
            to,
            at: self.now,
            offer_expires_at,
            checked_in_at,
            note,
        };
        let notice = notify::for_transition(&t, &self.state.event);
        self.effects.push(Effect::Transition(t));
        self.effects.extend(notice.map(Effect::Notify));
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
        self.promote_as("promoted from the waitlist")
    }

    /// [`Run::promote`], logging each promotion with `note` (a draw's
    /// winners are "drawn": the same fitting rule, another message).
    pub(super) fn promote_as(&mut self, note: &'static str) -> Vec<BookingId> {
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
            self.transition(&record, to, offer, Some(note));
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

    pub(super) fn finish<T>(mut self, outcome: T) -> Decision<T> {
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

/// Remind the seat holders of a published event `lead` before its start,
/// once: `s.bookings` holds the confirmed and offered bookings; `sent` says
/// whether this reminder went already. Returns how many were reminded.
pub fn remind(s: &EventState, lead: Duration, sent: bool, now: DateTime<Utc>) -> Decision<u32> {
    let d = &s.event.draft;
    let due = d.status == EventStatus::Published && now >= d.starts_at - lead && now < d.starts_at;
    if sent || !due {
        return Decision {
            outcome: 0,
            effects: vec![],
        };
    }
    // A shorter reminder already due makes this one moot: mark it gone, tell no one.
    let moot = notify::REMINDER_LEADS
        .iter()
        .any(|l| *l < lead && now >= d.starts_at - *l);
    let mut effects: Vec<Effect> = s
        .bookings
        .iter()
        .filter(|_| !moot)
        .filter(|b| matches!(b.status, BookingStatus::Confirmed | BookingStatus::Offered))
        .map(|b| {
            Effect::Notify(notify::reminder(
                b.user,
                &b.id.to_string(),
                &s.event,
                lead,
                now,
            ))
        })
        .collect();
    let n = effects.len() as u32;
    effects.push(Effect::Reminded {
        event: s.event.id,
        lead_hours: lead.num_hours() as u32,
        at: now,
    });
    Decision {
        outcome: n,
        effects,
    }
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
            // The seat stays held: the transition moves no counts.
            let state = EventState {
                event: event.clone(),
                held: HeldCounts::new(),
                waitlist: vec![],
                bookings: vec![],
                applications: vec![],
            };
            let mut run = Run::new(state, now);
            let booking = run.transition(&b, BookingStatus::CheckedIn, None, None);
            Ok(run.finish(CheckIn {
                booking,
                checked_in_at: now,
                already: false,
            }))
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
    /// A draw's time, groups and public value (a draw event only).
    pub draw_at: Option<DateTime<Utc>>,
    pub priority_groups: Option<Vec<super::draw::PriorityGroup>>,
    pub public_value: Option<String>,
}

/// Check a patch of a draw's fields against the draw's state: `applied` is
/// how many have applied. Nothing of a drawn event's draw changes, and the
/// window and the groups are fixed once anyone has applied (whoever applied
/// did so under them).
fn check_draw_patch(cur: &Event, patch: &EventPatch, applied: u32) -> Result<(), Refused> {
    let touches_draw =
        patch.draw_at.is_some() || patch.priority_groups.is_some() || patch.public_value.is_some();
    if cur.draft.draw.is_none() {
        if touches_draw {
            let field = if patch.draw_at.is_some() {
                "draw_at"
            } else if patch.priority_groups.is_some() {
                "priority_groups"
            } else {
                "public_value"
            };
            return Err(invalid(
                field,
                "this event is first come, first served: it has no draw",
            ));
        }
        return Ok(());
    }
    let d = &cur.draft;
    let plan = d.draw.as_ref().expect("checked");
    let moves = |new: Option<DateTime<Utc>>, old: DateTime<Utc>| new.is_some_and(|n| n != old);
    // What the patch changes of the draw, in the order a refusal names it.
    let changed = [
        ("draw_at", moves(patch.draw_at, plan.draw_at)),
        (
            "priority_groups",
            patch
                .priority_groups
                .as_ref()
                .is_some_and(|g| *g != plan.priority_groups),
        ),
        (
            "public_value",
            patch
                .public_value
                .as_ref()
                .is_some_and(|v| *v != plan.public_value),
        ),
        (
            "booking_opens_at",
            moves(patch.booking_opens_at, d.booking_opens_at),
        ),
        (
            "booking_closes_at",
            moves(patch.booking_closes_at, d.booking_closes_at),
        ),
    ];
    let first = |public_value_too: bool| {
        changed
            .iter()
            .find(|(f, c)| *c && (public_value_too || *f != "public_value"))
            .map(|(f, _)| *f)
    };
    if let Some(at) = cur.drawn_at()
        && let Some(field) = first(true)
    {
        return Err(invalid(
            field,
            format!("the draw was made at {}", at.to_rfc3339()),
        ));
    }
    // The public value may change until the draw: it is not known when people apply.
    if applied > 0
        && let Some(field) = first(false)
    {
        return Err(invalid(
            field,
            format!("{applied} people have applied under the window and groups as they are"),
        ));
    }
    Ok(())
}

/// Edit an event, all or nothing: a larger capacity moves the waitlist up at
/// once; one below the seats held is refused; `status: cancelled` cancels
/// every active booking. `s.bookings` holds the event's active bookings.
pub fn edit_event(
    s: EventState,
    patch: &EventPatch,
    now: DateTime<Utc>,
) -> Result<Decision<Event>, Refused> {
    check_draw_patch(&s.event, patch, s.applications.len() as u32)?;
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
    if let Some(plan) = d.draw.as_mut() {
        if let Some(at) = patch.draw_at {
            plan.draw_at = at;
        }
        if let Some(g) = &patch.priority_groups {
            plan.priority_groups = g.clone();
        }
        if let Some(v) = &patch.public_value {
            plan.public_value = v.clone();
        }
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
    let reserved: u32 = d.quotas.iter().map(|q| q.seats).sum();
    let outside = run.state.held.get(&None).copied().unwrap_or(0);
    if !d.quotas.is_empty() && outside > d.capacity - reserved {
        return Err(invalid(
            "capacity",
            format!(
                "the {outside} seats held outside the quotas need a capacity of at least {}",
                outside + reserved
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
        // A draw not yet made never will be: its applicants are told.
        let waiting = std::mem::take(&mut run.state.applications);
        for a in waiting {
            let notice = notify::draw_cancelled(a.user, &a.id.to_string(), &run.state.event, now);
            run.effects.push(Effect::Notify(notice));
            run.effects
                .push(Effect::PutApplication(super::application::cancelled(
                    a, now,
                )));
        }
    } else {
        let before = Event {
            draft: cur,
            ..run.state.event.clone()
        };
        let told: Vec<Effect> = run
            .state
            .bookings
            .iter()
            .filter_map(|b| notify::event_changed(b.user, &before, &run.state.event, now))
            .map(Effect::Notify)
            .collect();
        run.effects.extend(told);
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
        if let Some(why) = self.quotas.iter().find_map(|q| q.check_value().err()) {
            return Err(("quotas", why));
        }
        if let Some(plan) = &self.draw {
            if plan.draw_at < self.booking_closes_at {
                return Err((
                    "draw_at",
                    format!(
                        "must be at or after booking_closes_at ({})",
                        self.booking_closes_at.to_rfc3339()
                    ),
                ));
            }
            if plan.draw_at >= self.starts_at {
                return Err(("draw_at", "must be before starts_at".into()));
            }
            if !self.waitlist {
                return Err((
                    "waitlist",
                    "a draw keeps everyone it does not place waiting in rank order".into(),
                ));
            }
            if self.offer_hours.is_none() {
                return Err((
                    "offer_hours",
                    "a draw offers its places: how many hours to accept".into(),
                ));
            }
            if plan.public_value.chars().count() > 200
                || plan.public_value.chars().any(char::is_control)
            {
                return Err(("public_value", "at most 200 characters on one line".into()));
            }
            // The handlers name the exact field (`priority_groups[1].name`)
            // before this; here the rule holds whoever calls.
            super::draw::check_groups(&plan.priority_groups)
                .map_err(|(f, why)| ("priority_groups", format!("{f}: {why}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The rules against a model of the store: random command sequences on
    //! random events, every invariant checked after every step.

    use super::*;
    use crate::domain::event::{Eligibility, EventKind, QuotaAttribute};
    use crate::domain::user::{Gender, Profile, Role};
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// The store as the rules see it: every booking of one event.
    #[derive(Debug, Clone)]
    struct Model {
        event: Event,
        bookings: Vec<BookingRecord>,
        users: Vec<User>,
        now: DateTime<Utc>,
        next_id: u64,
    }

    #[derive(Debug, Clone)]
    enum Cmd {
        Book(usize),
        Cancel(usize, bool),
        Accept(usize),
        Lapse,
        CheckIn(usize),
        NoShows,
        Advance(i64),
        Capacity(u32),
        CancelEvent,
    }

    fn cmd() -> impl Strategy<Value = Cmd> {
        prop_oneof![
            6 => (0..10usize).prop_map(Cmd::Book),
            3 => (0..40usize, any::<bool>()).prop_map(|(i, m)| Cmd::Cancel(i, m)),
            2 => (0..40usize).prop_map(Cmd::Accept),
            1 => Just(Cmd::Lapse),
            1 => (0..40usize).prop_map(Cmd::CheckIn),
            1 => Just(Cmd::NoShows),
            2 => (1..80i64).prop_map(Cmd::Advance),
            1 => (1..8u32).prop_map(Cmd::Capacity),
            1 => Just(Cmd::CancelEvent).prop_filter("rare", |_| true),
        ]
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    }

    impl Model {
        fn new(
            capacity: u32,
            female_seats: Option<u32>,
            waitlist: bool,
            offer: Option<u32>,
            genders: &[bool],
        ) -> Model {
            let start = t0() + Duration::days(3);
            let quotas = female_seats
                .map(|seats| {
                    vec![Quota {
                        attribute: QuotaAttribute::Gender,
                        value: "female".into(),
                        seats: seats.min(capacity),
                    }]
                })
                .unwrap_or_default();
            let event = Event {
                id: EventId::from_u64(7).unwrap(),
                draft: EventDraft {
                    kind: EventKind::Recuperation,
                    site_id: None,
                    venue_name: Some("v".into()),
                    lat: 0.0,
                    lon: 0.0,
                    title: "t".into(),
                    description: String::new(),
                    starts_at: start,
                    ends_at: start + Duration::hours(5),
                    capacity,
                    booking_opens_at: t0() - Duration::hours(1),
                    booking_closes_at: start,
                    cancel_deadline: start - Duration::hours(24),
                    waitlist,
                    status: EventStatus::Published,
                    quotas,
                    eligibility: Eligibility::default(),
                    offer_hours: offer,
                    draw: None,
                },
                held: 0,
                version: 1,
                updated_at: t0(),
                settled_at: None,
                seal: None,
            };
            let users = genders
                .iter()
                .enumerate()
                .map(|(i, female)| User {
                    id: i as i64 + 1,
                    phone: format!("137{:08}", i).parse().unwrap(),
                    role: Role::Worker,
                    sites: vec![],
                    unions: vec![],
                    profile: Profile {
                        gender: Some(if *female {
                            Gender::Female
                        } else {
                            Gender::Male
                        }),
                        ..Profile::default()
                    },
                })
                .collect();
            Model {
                event,
                bookings: vec![],
                users,
                now: t0(),
                next_id: 100,
            }
        }

        fn held(&self) -> HeldCounts {
            let mut h = HeldCounts::new();
            for b in self.bookings.iter().filter(|b| b.status.holds_seat()) {
                *h.entry(b.quota.clone()).or_insert(0) += 1;
            }
            h
        }

        fn waitlist(&self) -> Vec<Waiting> {
            let mut w: Vec<Waiting> = self
                .bookings
                .iter()
                .filter(|b| b.status == BookingStatus::Waitlisted)
                .map(|b| Waiting {
                    id: b.id,
                    user: b.user,
                    quota: b.quota.clone(),
                    seq: b.waitlist_seq.unwrap(),
                })
                .collect();
            w.sort_by_key(|w| w.seq);
            w
        }

        fn state(&self, bookings: Vec<BookingRecord>) -> EventState {
            EventState {
                event: self.event.clone(),
                held: self.held(),
                waitlist: self.waitlist(),
                bookings,
                applications: vec![],
            }
        }

        fn with_status(&self, s: &[BookingStatus]) -> Vec<BookingRecord> {
            self.bookings
                .iter()
                .filter(|b| s.contains(&b.status))
                .cloned()
                .collect()
        }

        /// Apply effects as the store does, refusing a stale transition.
        fn apply(&mut self, effects: &[Effect]) {
            for e in effects {
                match e {
                    Effect::Insert(b) => {
                        assert!(self.bookings.iter().all(|x| x.id != b.id));
                        self.bookings.push(b.clone());
                    }
                    Effect::PutApplication(a) => panic!("a booking command wrote {a:?}"),
                    Effect::Transition(t) => {
                        let b = self
                            .bookings
                            .iter_mut()
                            .find(|b| b.id == t.booking)
                            .unwrap();
                        assert_eq!(
                            b.status, t.from,
                            "a transition from the status the booking has"
                        );
                        assert_eq!(b.user, t.user);
                        b.status = t.to;
                        b.offer_expires_at = t.offer_expires_at;
                        b.checked_in_at = t.checked_in_at.or(b.checked_in_at);
                        b.updated_at = t.at;
                    }
                    Effect::SaveEvent(ev) => self.event = ev.clone(),
                    Effect::Notify(n) => assert!(self.users.iter().any(|u| u.id == n.user)),
                    Effect::Reminded { .. } => {}
                }
            }
        }

        fn nth(&self, i: usize) -> Option<BookingRecord> {
            (!self.bookings.is_empty()).then(|| self.bookings[i % self.bookings.len()].clone())
        }

        fn step(&mut self, c: &Cmd) {
            let now = self.now;
            match c {
                Cmd::Book(u) => {
                    let user = self.users[u % self.users.len()].clone();
                    let tail_seq = self
                        .bookings
                        .iter()
                        .filter_map(|b| b.waitlist_seq)
                        .max()
                        .unwrap_or(0);
                    let (from, to) = trip_year(self.event.draft.starts_at);
                    let s = BookSnapshot {
                        event: self.event.clone(),
                        held: self.held(),
                        waitlisted: self.waitlist().len() as u32,
                        last_seq: tail_seq,
                        active: self
                            .bookings
                            .iter()
                            .find(|b| {
                                b.user == user.id
                                    && !matches!(
                                        b.status,
                                        BookingStatus::Cancelled | BookingStatus::NoShow
                                    )
                            })
                            .map(|b| b.id),
                        trips_this_year: {
                            let _ = (from, to);
                            0
                        },
                        membership: None,
                    };
                    self.next_id += 1;
                    let d = book(&s, &user, BookingId::from_u64(self.next_id).unwrap(), now);
                    if let BookOutcome::Booked { booking } = &d.outcome {
                        if booking.status == BookingStatus::Waitlisted {
                            assert_eq!(booking.waitlist_position, Some(s.waitlisted + 1));
                        }
                    } else {
                        assert!(d.effects.is_empty());
                    }
                    self.apply(&d.effects);
                }
                Cmd::Cancel(i, manager) => {
                    let Some(b) = self.nth(*i) else { return };
                    let by = if *manager {
                        Canceller::Manager
                    } else {
                        Canceller::Holder
                    };
                    let before = self.clone();
                    match cancel(self.state(vec![b.clone()]), b.id, by, now) {
                        Ok(d) => {
                            self.apply(&d.effects);
                            self.check_promotions(&before, &d.outcome.promoted);
                            assert_eq!(
                                self.bookings.iter().find(|x| x.id == b.id).unwrap().status,
                                BookingStatus::Cancelled
                            );
                        }
                        Err(_) => {
                            assert!(
                                (by == Canceller::Holder
                                    && now >= self.event.draft.cancel_deadline)
                                    || matches!(
                                        b.status,
                                        BookingStatus::CheckedIn | BookingStatus::NoShow
                                    )
                            );
                        }
                    }
                }
                Cmd::Accept(i) => {
                    let Some(b) = self.nth(*i) else { return };
                    match accept(self.state(vec![b.clone()]), b.id, now) {
                        Ok(d) => {
                            assert_eq!(b.status, BookingStatus::Offered);
                            assert!(b.offer_expires_at.unwrap() > now);
                            self.apply(&d.effects);
                        }
                        Err(_) => assert!(
                            b.status != BookingStatus::Offered
                                || b.offer_expires_at.unwrap() <= now
                        ),
                    }
                }
                Cmd::Lapse => {
                    let before = self.clone();
                    let d =
                        lapse_offers(self.state(self.with_status(&[BookingStatus::Offered])), now);
                    self.apply(&d.effects);
                    let promoted: Vec<BookingId> = d
                        .effects
                        .iter()
                        .filter_map(|e| match e {
                            Effect::Transition(t) if t.from == BookingStatus::Waitlisted => {
                                Some(t.booking)
                            }
                            _ => None,
                        })
                        .collect();
                    self.check_promotions(&before, &promoted);
                    assert!(
                        self.bookings
                            .iter()
                            .all(|b| b.status != BookingStatus::Offered
                                || b.offer_expires_at.unwrap() > now)
                    );
                }
                Cmd::CheckIn(i) => {
                    let Some(b) = self.nth(*i) else { return };
                    match check_in(&self.event.clone(), b.clone(), now) {
                        Ok(d) => {
                            assert!(matches!(
                                b.status,
                                BookingStatus::Confirmed | BookingStatus::CheckedIn
                            ));
                            self.apply(&d.effects);
                        }
                        Err(_) => assert!(!matches!(
                            b.status,
                            BookingStatus::Confirmed | BookingStatus::CheckedIn
                        )),
                    }
                }
                Cmd::NoShows => {
                    let d = mark_no_shows(
                        self.state(self.with_status(&[BookingStatus::Confirmed])),
                        now,
                    );
                    self.apply(&d.effects);
                    if now >= self.event.draft.ends_at {
                        assert!(
                            self.bookings
                                .iter()
                                .all(|b| b.status != BookingStatus::Confirmed)
                        );
                        assert!(self.event.settled_at.is_some());
                    }
                }
                Cmd::Advance(h) => self.now += Duration::hours(*h),
                Cmd::Capacity(c) => {
                    let before = self.clone();
                    let patch = EventPatch {
                        capacity: Some(*c),
                        ..EventPatch::default()
                    };
                    let active = self.with_status(&[
                        BookingStatus::Confirmed,
                        BookingStatus::Waitlisted,
                        BookingStatus::Offered,
                    ]);
                    match edit_event(self.state(active), &patch, now) {
                        Ok(d) => {
                            self.apply(&d.effects);
                            assert_eq!(self.event.draft.capacity, *c);
                            let promoted: Vec<BookingId> = d
                                .effects
                                .iter()
                                .filter_map(|e| match e {
                                    Effect::Transition(t)
                                        if t.from == BookingStatus::Waitlisted =>
                                    {
                                        Some(t.booking)
                                    }
                                    _ => None,
                                })
                                .collect();
                            self.check_promotions(&before, &promoted);
                        }
                        Err(_) => {
                            let reserved: u32 =
                                before.event.draft.quotas.iter().map(|q| q.seats).sum();
                            let outside = before.held().get(&None).copied().unwrap_or(0);
                            assert!(
                                *c < before.event.held
                                    || reserved > *c
                                    || (reserved > 0 && outside > *c - reserved)
                            )
                        }
                    }
                }
                Cmd::CancelEvent => {
                    let patch = EventPatch {
                        status: Some(EventStatus::Cancelled),
                        ..EventPatch::default()
                    };
                    let active = self.with_status(&[
                        BookingStatus::Confirmed,
                        BookingStatus::Waitlisted,
                        BookingStatus::Offered,
                    ]);
                    let d = edit_event(self.state(active), &patch, now).unwrap();
                    self.apply(&d.effects);
                    assert!(self.bookings.iter().all(|b| !matches!(
                        b.status,
                        BookingStatus::Confirmed
                            | BookingStatus::Waitlisted
                            | BookingStatus::Offered
                    )));
                }
            }
        }

        /// The seats freed went to the first waitlisted people they fit:
        /// nobody promoted was passed over by someone earlier of the same
        /// quota who is still waiting.
        fn check_promotions(&self, before: &Model, promoted: &[BookingId]) {
            for p in promoted {
                let was = before.bookings.iter().find(|b| b.id == *p).unwrap();
                assert_eq!(was.status, BookingStatus::Waitlisted);
                for w in self
                    .bookings
                    .iter()
                    .filter(|b| b.status == BookingStatus::Waitlisted)
                {
                    assert!(
                        !(w.quota == was.quota && w.waitlist_seq < was.waitlist_seq),
                        "{w:?} waited longer than {was:?} in the same quota"
                    );
                }
            }
        }

        fn check_invariants(&self) {
            let held = self.held();
            let d = &self.event.draft;
            let total: u32 = held.values().sum();
            assert_eq!(
                self.event.held, total,
                "the held counter equals the seats held"
            );
            assert!(
                total <= d.capacity,
                "{total} held > capacity {}",
                d.capacity
            );
            let reserved: u32 = d.quotas.iter().map(|q| q.seats).sum();
            for (k, n) in &held {
                match k {
                    Some(k) => {
                        let seats: u32 = d
                            .quotas
                            .iter()
                            .filter(|q| &q.key() == k)
                            .map(|q| q.seats)
                            .sum();
                        assert!(*n <= seats, "quota {k}: {n} > {seats}");
                    }
                    None if !d.quotas.is_empty() => assert!(*n <= d.capacity - reserved),
                    None => {}
                }
            }
            let positions = waitlist_positions(&self.bookings);
            let mut ps: Vec<u32> = positions.values().copied().collect();
            ps.sort_unstable();
            assert_eq!(
                ps,
                (1..=ps.len() as u32).collect::<Vec<_>>(),
                "positions 1..n"
            );
            let mut seqs: Vec<i64> = self.waitlist().iter().map(|w| w.seq).collect();
            seqs.dedup();
            assert_eq!(seqs.len(), positions.len(), "arrival numbers are distinct");
            if self.now < d.ends_at && d.status != EventStatus::Cancelled {
                for w in self.waitlist() {
                    assert!(
                        !seat_for(&self.event, &held, w.quota.as_deref()),
                        "{w:?} waits while a seat fits them"
                    );
                }
            }
            // One active booking per person.
            for u in &self.users {
                let active = self
                    .bookings
                    .iter()
                    .filter(|b| {
                        b.user == u.id
                            && !matches!(b.status, BookingStatus::Cancelled | BookingStatus::NoShow)
                    })
                    .count();
                assert!(active <= 1);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_commands_keep_every_invariant(
            capacity in 1..6u32,
            female_seats in proptest::option::of(0..4u32),
            waitlist in any::<bool>(),
            offer in proptest::option::of(1..48u32),
            genders in proptest::collection::vec(any::<bool>(), 10),
            cmds in proptest::collection::vec(cmd(), 1..60),
        ) {
            let mut m = Model::new(capacity, female_seats, waitlist, offer, &genders);
            for c in &cmds {
                m.step(c);
                m.check_invariants();
            }
        }
    }

    #[test]
    fn a_freed_seat_passes_in_arrival_order_within_its_quota() {
        let mut m = Model::new(2, Some(1), true, None, &[true, true, false, true, false]);
        for u in 0..5 {
            m.step(&Cmd::Book(u));
        }
        // Seats: user 1 (female quota), user 3 (male, outside); waiting: 2 (f), 4 (f), 5 (m).
        let status = |m: &Model, u: i64| m.bookings.iter().find(|b| b.user == u).unwrap().status;
        assert_eq!(status(&m, 1), BookingStatus::Confirmed);
        assert_eq!(status(&m, 3), BookingStatus::Confirmed);
        // The man cancels: the free seat is outside the quota, so the next man gets it.
        let i = m.bookings.iter().position(|b| b.user == 3).unwrap();
        m.step(&Cmd::Cancel(i, false));
        assert_eq!(status(&m, 5), BookingStatus::Confirmed);
        assert_eq!(status(&m, 2), BookingStatus::Waitlisted);
        // The first woman cancels: the woman who came first of those waiting gets it.
        let i = m.bookings.iter().position(|b| b.user == 1).unwrap();
        m.step(&Cmd::Cancel(i, false));
        assert_eq!(status(&m, 2), BookingStatus::Confirmed);
        assert_eq!(status(&m, 4), BookingStatus::Waitlisted);
        m.check_invariants();
    }

    #[test]
    fn a_lapsed_offer_passes_on_and_cannot_be_accepted() {
        let mut m = Model::new(1, None, true, Some(24), &[false, false, false]);
        for u in 0..3 {
            m.step(&Cmd::Book(u));
        }
        m.step(&Cmd::Cancel(0, false));
        let b2 = m.bookings[1].clone();
        assert_eq!(b2.status, BookingStatus::Offered);
        m.now += Duration::hours(25);
        let refused = accept(m.state(vec![b2.clone()]), b2.id, m.now).unwrap_err();
        assert!(matches!(refused, Refused::WrongState(_)));
        m.step(&Cmd::Lapse);
        assert_eq!(m.bookings[1].status, BookingStatus::Cancelled);
        assert_eq!(m.bookings[2].status, BookingStatus::Offered);
        m.check_invariants();
    }

    #[test]
    fn an_edit_that_fails_has_no_effects_and_one_that_passes_bumps_the_version_once() {
        let m = Model::new(3, None, true, None, &[true]);
        let bad = EventPatch {
            title: Some("new".into()),
            ends_at: Some(m.event.draft.starts_at - Duration::hours(1)),
            ..EventPatch::default()
        };
        assert_eq!(
            edit_event(m.state(vec![]), &bad, m.now).unwrap_err(),
            Refused::Invalid {
                field: "ends_at",
                detail: "must be after starts_at".into()
            }
        );
        let good = EventPatch {
            title: Some("new".into()),
            status: Some(EventStatus::Draft),
            ..EventPatch::default()
        };
        let d = edit_event(m.state(vec![]), &good, m.now).unwrap();
        assert_eq!(d.outcome.version, 2);
        assert_eq!(d.outcome.draft.title, "new");
        assert_eq!(d.outcome.draft.status, EventStatus::Draft);
    }
}
