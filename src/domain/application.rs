//! Applying for a place in a draw (抽签), and the draw itself (issue 26):
//! pure rules, decided once for every backend like the booking rules.
//!
//! - [`apply`]: one application per person, in the event's booking window,
//!   eligibility checked now (and again at the draw). The time of applying is
//!   kept for the person's own list and never used by the draw.
//! - [`withdraw`]: before the window closes.
//! - [`run_draw`]: at `draw_at`, once. Eligible applications are ordered by
//!   the recipe in [`super::draw`]; each becomes a waitlisted booking with its
//!   rank as its waitlist number, and the booking rules' own promotion gives
//!   the places, in that order, to the first that fit the capacity and the
//!   quotas (`offered` for the event's `offer_hours`). A decline or a lapsed
//!   offer then passes its place down the same order, never by a second draw.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::booking::{BookingRecord, Decision, Effect, EventState, Refused, Run, Waiting};
use super::draw::{self, Entrant, Facts};
use super::event::{BookingId, BookingStatus, Event, EventId, EventStatus, Quota};
use super::hours::SHANGHAI;
use super::notify;
use super::union::{MembershipRecord, MembershipStatus};
use super::user::{User, UserId};

crate::domain::id::opaque_id!(
    /// An application's opaque id, such as `a3k9v0q2m7x1c`.
    ApplicationId,
    "a",
    BadApplicationId,
    "application"
);

/// Where an application stands, as stored. After the draw an entrant's
/// fortunes are its booking's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationState {
    /// In, waiting for the draw.
    Applied,
    Withdrawn,
    /// In the draw: `rank`, `group` and `booking` are set.
    Drawn,
    /// Not eligible when the draw was made (`refusal` names the rule).
    NotEligible,
    /// The event was cancelled before its draw.
    Cancelled,
}

impl ApplicationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationState::Applied => "applied",
            ApplicationState::Withdrawn => "withdrawn",
            ApplicationState::Drawn => "drawn",
            ApplicationState::NotEligible => "not_eligible",
            ApplicationState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for ApplicationState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            ApplicationState::Applied,
            ApplicationState::Withdrawn,
            ApplicationState::Drawn,
            ApplicationState::NotEligible,
            ApplicationState::Cancelled,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| format!("unknown application state '{s}'"))
    }
}

/// An application as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationRecord {
    pub id: ApplicationId,
    pub event: EventId,
    pub user: UserId,
    pub state: ApplicationState,
    /// The priority group's name the person was drawn in (`None`: no group).
    pub group: Option<String>,
    /// 1-based place in the drawn order.
    pub rank: Option<u32>,
    /// The booking the draw made for it.
    pub booking: Option<BookingId>,
    /// The eligibility rule that failed at the draw.
    pub refusal: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a person sees of their application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    /// Waiting for the draw.
    Applied,
    /// Drawn and offered a place: accept it (`POST /v1/bookings/{booking_id}/accept`)
    /// before `offer_expires_at`.
    Offered,
    /// Holds a place (accepted, checked in or marked absent after the event).
    Confirmed,
    /// Drawn, not (yet) placed: `waitlist_position` says how many are ahead.
    Waiting,
    Withdrawn,
    /// Not eligible at the draw (`not_eligible_rule` names the rule).
    NotEligible,
    /// Drawn, then declined, lapsed or cancelled; or the event was
    /// cancelled before its draw.
    Cancelled,
}

/// An application as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Application {
    #[schema(value_type = String)]
    pub id: String,
    #[schema(value_type = String)]
    pub event_id: String,
    pub status: ApplicationStatus,
    /// The priority group drawn in (after the draw; `null`: no group).
    pub group: Option<String>,
    /// 1-based place in the drawn order (after the draw).
    pub rank: Option<u32>,
    /// While `waiting`: 1 is next.
    pub waitlist_position: Option<u32>,
    /// The booking the draw made (accept or decline an offer through it).
    #[schema(value_type = Option<String>)]
    pub booking_id: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub not_eligible_rule: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub updated_at: DateTime<Utc>,
}

impl ApplicationRecord {
    /// The application as its holder sees it, with its booking (after the
    /// draw) and the booking's waitlist position.
    pub fn to_api(&self, booking: Option<(&BookingRecord, Option<u32>)>) -> Application {
        let status = match (self.state, booking.map(|(b, _)| b.status)) {
            (ApplicationState::Applied, _) => ApplicationStatus::Applied,
            (ApplicationState::Withdrawn, _) => ApplicationStatus::Withdrawn,
            (ApplicationState::NotEligible, _) => ApplicationStatus::NotEligible,
            (ApplicationState::Cancelled, _) => ApplicationStatus::Cancelled,
            (ApplicationState::Drawn, Some(BookingStatus::Offered)) => ApplicationStatus::Offered,
            (ApplicationState::Drawn, Some(BookingStatus::Waitlisted)) => {
                ApplicationStatus::Waiting
            }
            (
                ApplicationState::Drawn,
                Some(BookingStatus::Confirmed | BookingStatus::CheckedIn | BookingStatus::NoShow),
            ) => ApplicationStatus::Confirmed,
            (ApplicationState::Drawn, Some(BookingStatus::Cancelled) | None) => {
                ApplicationStatus::Cancelled
            }
        };
        Application {
            id: self.id.to_string(),
            event_id: self.event.to_string(),
            status,
            group: self.group.clone(),
            rank: self.rank,
            waitlist_position: booking
                .filter(|(b, _)| b.status == BookingStatus::Waitlisted)
                .and_then(|(_, p)| p),
            booking_id: self.booking.map(|b| b.to_string()),
            offer_expires_at: booking.and_then(|(b, _)| {
                (b.status == BookingStatus::Offered)
                    .then_some(b.offer_expires_at)
                    .flatten()
            }),
            not_eligible_rule: self.refusal.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// What applying needs to know, read in its transaction.
#[derive(Debug, Clone)]
pub struct ApplySnapshot {
    pub event: Event,
    /// The person's application to this event that is not withdrawn, if any.
    pub mine: Option<ApplicationRecord>,
    /// The person's active union membership, if any.
    pub membership: Option<MembershipRecord>,
    /// The person's seat-holding bookings of the event's kind in its year.
    pub trips_this_year: u32,
}

/// What an application came to; stored whole for idempotent replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    Applied {
        application: Application,
    },
    AlreadyApplied {
        application_id: String,
    },
    NotEligible {
        rule: String,
        detail: String,
    },
    OutsideWindow {
        detail: String,
    },
    NotOpen {
        detail: String,
    },
    /// First come, first served: book instead.
    NotADraw,
}

/// `user` applies; `id` is the new application's id should one be made.
pub fn apply(
    s: &ApplySnapshot,
    user: &User,
    id: ApplicationId,
    now: DateTime<Utc>,
) -> Decision<ApplyOutcome> {
    let refuse = |outcome| Decision {
        outcome,
        effects: vec![],
    };
    let d = &s.event.draft;
    if d.draw.is_none() {
        return refuse(ApplyOutcome::NotADraw);
    }
    if d.status != EventStatus::Published {
        return refuse(ApplyOutcome::NotOpen {
            detail: format!("the event is {}", d.status.as_str()),
        });
    }
    if now < d.booking_opens_at {
        return refuse(ApplyOutcome::OutsideWindow {
            detail: format!("applications open at {}", d.booking_opens_at.to_rfc3339()),
        });
    }
    if now >= d.booking_closes_at || s.event.drawn_at().is_some() {
        return refuse(ApplyOutcome::OutsideWindow {
            detail: format!(
                "applications closed at {}",
                d.booking_closes_at.to_rfc3339()
            ),
        });
    }
    if let Some(a) = &s.mine {
        return refuse(ApplyOutcome::AlreadyApplied {
            application_id: a.id.to_string(),
        });
    }
    if let Err(r) = d.eligibility.check(
        &user.profile,
        is_member(s.membership.as_ref(), user.id),
        d.starts_at,
        s.trips_this_year,
    ) {
        return refuse(ApplyOutcome::NotEligible {
            rule: r.rule.to_owned(),
            detail: r.detail,
        });
    }
    let record = ApplicationRecord {
        id,
        event: s.event.id,
        user: user.id,
        state: ApplicationState::Applied,
        group: None,
        rank: None,
        booking: None,
        refusal: None,
        created_at: now,
        updated_at: now,
    };
    Decision {
        outcome: ApplyOutcome::Applied {
            application: record.to_api(None),
        },
        effects: vec![Effect::PutApplication(record)],
    }
}

fn is_member(m: Option<&MembershipRecord>, user: UserId) -> bool {
    m.is_some_and(|m| m.user == user && m.status == MembershipStatus::Active)
}

/// Withdraw application `a` of `event`, by its holder, before the window
/// closes. Withdrawing a withdrawn application changes nothing.
pub fn withdraw(
    event: &Event,
    a: ApplicationRecord,
    now: DateTime<Utc>,
) -> Result<Decision<ApplicationRecord>, Refused> {
    match a.state {
        ApplicationState::Withdrawn => {
            return Ok(Decision {
                outcome: a,
                effects: vec![],
            });
        }
        ApplicationState::Applied => {}
        ApplicationState::Cancelled => {
            return Err(Refused::WrongState("the event was cancelled".into()));
        }
        ApplicationState::Drawn | ApplicationState::NotEligible => {
            return Err(Refused::WrongState(
                "the draw was made: cancel the booking it made instead".into(),
            ));
        }
    }
    if now >= event.draft.booking_closes_at {
        return Err(Refused::Invalid {
            field: "booking_closes_at",
            detail: format!(
                "applications closed at {}: the draw will include you",
                event.draft.booking_closes_at.to_rfc3339()
            ),
        });
    }
    let after = ApplicationRecord {
        state: ApplicationState::Withdrawn,
        updated_at: now,
        ..a
    };
    Ok(Decision {
        outcome: after.clone(),
        effects: vec![Effect::PutApplication(after)],
    })
}

/// Application `a` of an event cancelled before its draw.
pub fn cancelled(a: ApplicationRecord, now: DateTime<Utc>) -> ApplicationRecord {
    ApplicationRecord {
        state: ApplicationState::Cancelled,
        updated_at: now,
        ..a
    }
}

/// One application as the draw sees it, with what yizhan knows of the person.
#[derive(Debug, Clone)]
pub struct Applicant {
    pub application: ApplicationRecord,
    pub user: User,
    /// Holds an active union membership.
    pub member: bool,
    /// Seat-holding bookings of the event's kind in the event's year.
    pub trips_this_year: u32,
}

/// What the draw needs, read under the event's lock.
#[derive(Debug, Clone)]
pub struct DrawSnapshot {
    pub state: EventState,
    /// `S`, committed to when the event was made.
    pub secret: [u8; 32],
    /// The applications not withdrawn.
    pub applicants: Vec<Applicant>,
}

/// What a draw attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawOutcome {
    /// Made now.
    Drawn {
        entrants: u32,
        offered: u32,
        not_eligible: u32,
    },
    /// Made before (by this node or another): nothing changes.
    AlreadyDrawn,
    /// Not yet `draw_at`, not a draw, or the event is not published.
    NotDue,
}

/// Make the draw, once, at or after `draw_at`. `new_booking` gives each
/// entrant's booking its id.
pub fn run_draw(
    s: DrawSnapshot,
    mut new_booking: impl FnMut() -> BookingId,
    now: DateTime<Utc>,
) -> Decision<DrawOutcome> {
    let nothing = |outcome| Decision {
        outcome,
        effects: vec![],
    };
    let event = &s.state.event;
    let Some(plan) = event.draft.draw.clone() else {
        return nothing(DrawOutcome::NotDue);
    };
    if event.drawn_at().is_some() {
        return nothing(DrawOutcome::AlreadyDrawn);
    }
    if now < plan.draw_at || event.draft.status != EventStatus::Published {
        return nothing(DrawOutcome::NotDue);
    }
    let draft = event.draft.clone();
    let year = plan.draw_at.with_timezone(&SHANGHAI).year();
    let mut run = Run::new(s.state, now);
    let mut by_id: BTreeMap<String, &Applicant> = BTreeMap::new();
    let mut entrants = Vec::new();
    let mut refused = Vec::new();
    for a in s
        .applicants
        .iter()
        .filter(|a| a.application.state == ApplicationState::Applied)
    {
        let p = &a.user.profile;
        match draft
            .eligibility
            .check(p, a.member, draft.starts_at, a.trips_this_year)
        {
            Err(r) => refused.push((a, r)),
            Ok(()) => {
                let facts = Facts {
                    frontline: p.frontline,
                    union_member: a.member,
                    gender: p.gender,
                    marital_status: p.marital_status,
                    birth_year: p.birth_year,
                };
                let id = a.application.id.to_string();
                entrants.push(Entrant {
                    id: id.clone(),
                    group: draw::group_of(&plan.priority_groups, &facts, year),
                });
                by_id.insert(id, a);
            }
        }
    }
    let drawn = draw::draw(&s.secret, &plan.public_value, &entrants);
    // Everyone drawn waits in rank order; the waitlist was empty (nobody
    // books a draw event), so a rank is its waitlist number.
    let base = run.state.waitlist.iter().map(|w| w.seq).max().unwrap_or(0);
    let mut drawn_apps = Vec::with_capacity(drawn.order.len());
    for r in &drawn.order {
        let a = by_id[&r.id];
        let booking = BookingRecord {
            id: new_booking(),
            event: event_id(&run),
            user: a.user.id,
            status: BookingStatus::Waitlisted,
            quota: Quota::key_for(&draft.quotas, &a.user.profile),
            waitlist_seq: Some(base + i64::from(r.rank)),
            offer_expires_at: None,
            checked_in_at: None,
            created_at: now,
            updated_at: now,
        };
        run.state.waitlist.push(Waiting {
            id: booking.id,
            user: booking.user,
            quota: booking.quota.clone(),
            seq: booking.waitlist_seq.expect("set"),
        });
        run.effects.push(Effect::Insert(booking.clone()));
        run.state.bookings.push(booking.clone());
        drawn_apps.push(ApplicationRecord {
            state: ApplicationState::Drawn,
            group: r.group.map(|g| plan.priority_groups[g].name.clone()),
            rank: Some(r.rank),
            booking: Some(booking.id),
            updated_at: now,
            ..a.application.clone()
        });
    }
    let offered = run.promote_as("drawn").len() as u32;
    // Everyone else hears where they stand.
    let position: BTreeMap<BookingId, u32> = run
        .state
        .waitlist
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id, i as u32 + 1))
        .collect();
    let after = run.state.event.clone();
    for a in &drawn_apps {
        let b = a.booking.expect("set");
        if let Some(&p) = position.get(&b) {
            run.effects.push(Effect::Notify(notify::draw_waiting(
                a.user,
                &a.id.to_string(),
                &after,
                a.rank.unwrap_or(0),
                p,
                now,
            )));
        }
    }
    let not_eligible = refused.len() as u32;
    for (a, r) in refused {
        run.effects.push(Effect::Notify(notify::draw_not_eligible(
            a.user.id,
            &a.application.id.to_string(),
            &after,
            &r.detail,
            now,
        )));
        run.effects.push(Effect::PutApplication(ApplicationRecord {
            state: ApplicationState::NotEligible,
            refusal: Some(r.rule.to_owned()),
            updated_at: now,
            ..a.application.clone()
        }));
    }
    run.effects
        .extend(drawn_apps.into_iter().map(Effect::PutApplication));
    let seal = run.state.event.seal.get_or_insert_with(Default::default);
    seal.drawn_at = Some(now);
    seal.entrants_hash = Some(drawn.entrants_hash);
    seal.seed = Some(drawn.seed);
    run.event_changed = true;
    run.finish(DrawOutcome::Drawn {
        entrants: drawn.order.len() as u32,
        offered,
        not_eligible,
    })
}

fn event_id(run: &Run) -> EventId {
    run.state.event.id
}

#[cfg(test)]
mod tests {
    //! The draw against a simple model: walk the drawn order and give each
    //! person a place if one fits their quota; everyone is told once.

    use super::*;
    use crate::domain::booking::HeldCounts;
    use crate::domain::draw::PriorityGroup;
    use crate::domain::event::{
        DrawPlan, DrawSeal, Eligibility, EventDraft, EventKind, QuotaAttribute,
    };
    use crate::domain::notify::NoticeType;
    use crate::domain::user::{Gender, Profile, Role};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap()
    }

    /// (gender: 0 female, 1 male, 2 undeclared; front-line; born 2000 or 1980; withdrawn)
    type Person = (u8, bool, bool, bool);

    fn event(capacity: u32, female: u32, male: u32, offer_hours: u32) -> Event {
        let start = t0() + Duration::days(10);
        let quota = |value: &str, seats| Quota {
            attribute: QuotaAttribute::Gender,
            value: value.into(),
            seats,
        };
        Event {
            id: EventId::from_u64(9).unwrap(),
            draft: EventDraft {
                kind: EventKind::Recuperation,
                site_id: None,
                venue_name: Some("疗养院".into()),
                lat: 36.0,
                lon: 117.0,
                title: "疗休养".into(),
                description: String::new(),
                starts_at: start,
                ends_at: start + Duration::days(4),
                capacity,
                booking_opens_at: t0() - Duration::days(3),
                booking_closes_at: t0() - Duration::hours(1),
                cancel_deadline: start - Duration::days(1),
                waitlist: true,
                status: EventStatus::Published,
                quotas: vec![quota("female", female), quota("male", male)],
                eligibility: Eligibility::default(),
                offer_hours: Some(offer_hours),
                draw: Some(Box::new(DrawPlan {
                    draw_at: t0(),
                    priority_groups: vec![
                        PriorityGroup {
                            name: "一线职工".into(),
                            frontline: Some(true),
                            union_member: None,
                            gender: None,
                            marital_status: None,
                            min_age: None,
                            max_age: None,
                        },
                        PriorityGroup {
                            name: "青年职工".into(),
                            frontline: None,
                            union_member: None,
                            gender: None,
                            marital_status: None,
                            min_age: None,
                            max_age: Some(35),
                        },
                    ],
                    public_value: "双色球 2026141".into(),
                })),
            },
            held: 0,
            version: 1,
            updated_at: t0(),
            settled_at: None,
            seal: Some(Box::new(DrawSeal {
                seed_commitment: draw::commitment(&[7; 32]),
                ..DrawSeal::default()
            })),
        }
    }

    fn snapshot(ev: Event, people: &[Person]) -> DrawSnapshot {
        let applicants = people
            .iter()
            .enumerate()
            .map(|(i, &(g, frontline, young, withdrawn))| Applicant {
                application: ApplicationRecord {
                    id: ApplicationId::from_u64(1000 + i as u64).unwrap(),
                    event: ev.id,
                    user: i as i64 + 1,
                    state: if withdrawn {
                        ApplicationState::Withdrawn
                    } else {
                        ApplicationState::Applied
                    },
                    group: None,
                    rank: None,
                    booking: None,
                    refusal: None,
                    created_at: t0() - Duration::hours(i as i64 % 40),
                    updated_at: t0(),
                },
                user: User {
                    id: i as i64 + 1,
                    phone: format!("137{i:08}").parse().unwrap(),
                    role: Role::Worker,
                    sites: vec![],
                    unions: vec![],
                    profile: Profile {
                        gender: [Some(Gender::Female), Some(Gender::Male), None][g as usize % 3],
                        frontline: Some(frontline),
                        birth_year: Some(if young { 2000 } else { 1980 }),
                        ..Profile::default()
                    },
                },
                member: false,
                trips_this_year: 0,
            })
            .collect();
        DrawSnapshot {
            state: EventState {
                event: ev,
                held: HeldCounts::new(),
                waitlist: vec![],
                bookings: vec![],
                applications: vec![],
            },
            secret: [7; 32],
            applicants,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn the_draw_places_people_as_the_model_does(
            people in proptest::collection::vec((0..3u8, any::<bool>(), any::<bool>(), proptest::bool::weighted(0.1)), 0..60),
            capacity in 1..20u32,
            female in 0..8u32,
            male in 0..8u32,
        ) {
            let (female, male) = (female.min(capacity), male.min(capacity - female.min(capacity)));
            let ev = event(capacity, female, male, 24);
            let mut next = 0u64;
            let d = run_draw(snapshot(ev.clone(), &people), || { next += 1; BookingId::from_u64(next).unwrap() }, t0());
            let entrants = people.iter().filter(|p| !p.3).count();
            // Ranks: a permutation of 1..n, groups in order, no group last.
            let apps: Vec<&ApplicationRecord> = d.effects.iter().filter_map(|e| match e {
                Effect::PutApplication(a) => Some(a),
                _ => None,
            }).collect();
            prop_assert_eq!(apps.len(), entrants);
            let mut by_rank: Vec<&ApplicationRecord> = apps.clone();
            by_rank.sort_by_key(|a| a.rank);
            prop_assert!(by_rank.iter().enumerate().all(|(i, a)| a.rank == Some(i as u32 + 1)));
            let group_index = |a: &ApplicationRecord| match a.group.as_deref() {
                Some("一线职工") => 0,
                Some("青年职工") => 1,
                _ => 2,
            };
            prop_assert!(by_rank.windows(2).all(|w| group_index(w[0]) <= group_index(w[1])));
            // Each person's group is their first that holds.
            for a in &apps {
                let (_, frontline, young, _) = people[a.user as usize - 1];
                let want = if frontline { 0 } else if young { 1 } else { 2 };
                prop_assert_eq!(group_index(a), want);
            }
            // The model: walk the order, place whoever fits.
            let limit = |g: u8| [female, male, capacity - female - male][g as usize % 3];
            let mut held = [0u32; 3];
            let mut placed = 0;
            let mut expected = std::collections::BTreeSet::new();
            for a in &by_rank {
                let g = people[a.user as usize - 1].0 as usize % 3;
                if placed < capacity && held[g] < limit(g as u8) {
                    held[g] += 1;
                    placed += 1;
                    expected.insert(a.booking.unwrap());
                }
            }
            let offered: std::collections::BTreeSet<BookingId> = d.effects.iter().filter_map(|e| match e {
                Effect::Transition(t) if t.to == BookingStatus::Offered => {
                    assert_eq!(t.offer_expires_at, Some(t0() + Duration::hours(24)));
                    Some(t.booking)
                }
                _ => None,
            }).collect();
            prop_assert_eq!(&offered, &expected);
            // Everyone waits with their rank as waitlist number.
            let seqs: HashMap<BookingId, Option<i64>> = d.effects.iter().filter_map(|e| match e {
                Effect::Insert(b) => Some((b.id, b.waitlist_seq)),
                _ => None,
            }).collect();
            for a in &apps {
                prop_assert_eq!(seqs[&a.booking.unwrap()], a.rank.map(i64::from));
            }
            // Everyone in the draw is told exactly once; the withdrawn are not.
            let mut told: HashMap<i64, Vec<NoticeType>> = HashMap::new();
            for e in &d.effects {
                if let Effect::Notify(n) = e {
                    told.entry(n.user).or_default().push(n.kind);
                }
            }
            prop_assert_eq!(told.len(), entrants);
            prop_assert!(told.values().all(|k| k.len() == 1));
            prop_assert_eq!(told.values().filter(|k| k[0] == NoticeType::SeatOffered).count(), expected.len());
            // The event holds the places given and is sealed.
            let saved = d.effects.iter().find_map(|e| match e {
                Effect::SaveEvent(ev) => Some(ev),
                _ => None,
            }).unwrap();
            prop_assert_eq!(saved.held as usize, expected.len());
            let seal = saved.seal.as_ref().unwrap();
            prop_assert_eq!(seal.drawn_at, Some(t0()));
            prop_assert_eq!(d.outcome, DrawOutcome::Drawn { entrants: entrants as u32, offered: expected.len() as u32, not_eligible: 0 });
            // Drawn once: the sealed event draws nothing again.
            let again = run_draw(snapshot(saved.clone(), &people), || BookingId::from_u64(1).unwrap(), t0());
            prop_assert_eq!(again.outcome, DrawOutcome::AlreadyDrawn);
            prop_assert!(again.effects.is_empty());
        }
    }

    #[test]
    fn nothing_is_drawn_before_draw_at_and_not_eligible_people_are_told() {
        let ev = event(2, 0, 0, 24);
        let people = [(2, true, true, false), (1, false, false, false)];
        let early = run_draw(
            snapshot(ev.clone(), &people),
            || BookingId::from_u64(1).unwrap(),
            t0() - Duration::seconds(1),
        );
        assert_eq!(early.outcome, DrawOutcome::NotDue);
        assert!(early.effects.is_empty());
        // Over 60 at the draw: not eligible, told why, not an entrant.
        let mut strict = ev;
        strict.draft.eligibility.max_age = Some(40);
        let mut next = 0;
        let d = run_draw(
            snapshot(strict, &people),
            || {
                next += 1;
                BookingId::from_u64(next).unwrap()
            },
            t0(),
        );
        assert_eq!(
            d.outcome,
            DrawOutcome::Drawn {
                entrants: 1,
                offered: 1,
                not_eligible: 1
            }
        );
        let refused: Vec<&ApplicationRecord> = d
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::PutApplication(a) if a.state == ApplicationState::NotEligible => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].user, 2);
        assert_eq!(refused[0].refusal.as_deref(), Some("age"));
    }
}
