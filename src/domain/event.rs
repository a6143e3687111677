//! Events the unions run — free skills courses (工惠乐学), recuperation trips
//! for front-line workers (职工疗休养) and matchmaking events for single workers
//! (职工交友联谊) — and the rules of booking them.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::draw::PriorityGroup;
use super::hours::SHANGHAI;
use super::site::SiteId;
use super::user::{MaritalStatus, Profile, Role, User};

crate::domain::id::opaque_id!(
    /// An event's opaque id, such as `e3k9v0q2m7x1c`.
    EventId,
    "e",
    BadEventId,
    "event"
);

crate::domain::id::opaque_id!(
    /// A booking's opaque id, such as `b3k9v0q2m7x1c`.
    BookingId,
    "b",
    BadBookingId,
    "booking"
);

/// What an event is: a skills course, a recuperation trip (疗休养) or a matchmaking event for single workers (联谊).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Training,
    Recuperation,
    Matchmaking,
}

/// An event's state: `draft` (not listed), `published`, `cancelled`, `finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
    Finished,
}

/// The profile attribute a quota is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaAttribute {
    Gender,
    MaritalStatus,
    Frontline,
}

/// `seats` of the capacity reserved for people whose `attribute` is `value`
/// (e.g. 20 seats for `gender` = `female`). People matching no quota take the
/// seats no quota reserves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub attribute: QuotaAttribute,
    pub value: String,
    pub seats: u32,
}

impl Quota {
    /// The profile's value of this quota's attribute, as a string.
    pub fn value_of(attribute: QuotaAttribute, p: &Profile) -> Option<String> {
        match attribute {
            QuotaAttribute::Gender => p.gender.map(|g| g.as_str().to_owned()),
            QuotaAttribute::MaritalStatus => p.marital_status.map(|m| m.as_str().to_owned()),
            QuotaAttribute::Frontline => p.frontline.map(|f| f.to_string()),
        }
    }

    /// The quota a person falls in (the first that matches), as `attribute=value`.
    pub fn key_for(quotas: &[Quota], p: &Profile) -> Option<String> {
        quotas.iter().find_map(|q| {
            (Quota::value_of(q.attribute, p).as_deref() == Some(q.value.as_str())).then(|| q.key())
        })
    }

    /// Is `value` one of its attribute's values (`gender`: male, female;
    /// `marital_status`: single, married, divorced, widowed; `frontline`:
    /// true, false)? A quota nobody can fall in would hold its seats empty.
    pub fn check_value(&self) -> Result<(), String> {
        let v = serde_json::Value::String(self.value.clone());
        let ok = match self.attribute {
            QuotaAttribute::Gender => serde_json::from_value::<super::user::Gender>(v).is_ok(),
            QuotaAttribute::MaritalStatus => serde_json::from_value::<MaritalStatus>(v).is_ok(),
            QuotaAttribute::Frontline => matches!(self.value.as_str(), "true" | "false"),
        };
        let expected = match self.attribute {
            QuotaAttribute::Gender => "male, female",
            QuotaAttribute::MaritalStatus => "single, married, divorced, widowed",
            QuotaAttribute::Frontline => "true, false",
        };
        if ok {
            Ok(())
        } else {
            Err(format!("'{}' is not one of: {expected}", self.value))
        }
    }

    pub fn key(&self) -> String {
        let attr = match self.attribute {
            QuotaAttribute::Gender => "gender",
            QuotaAttribute::MaritalStatus => "marital_status",
            QuotaAttribute::Frontline => "frontline",
        };
        format!("{attr}={}", self.value)
    }
}

/// Who may book. Every rule set must hold; a refusal names the first that fails.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Eligibility {
    /// Met only by an `active` union membership (`GET /v1/me/memberships`);
    /// the profile's self-declared `union_member_no` does not count.
    pub union_members_only: bool,
    pub frontline_only: bool,
    pub single_only: bool,
    /// Age (in the event's starting year) at least this.
    pub min_age: Option<u32>,
    /// Age (in the event's starting year) at most this.
    pub max_age: Option<u32>,
    /// At most this many recuperation trips per person per calendar year.
    pub max_per_year: Option<u32>,
}

/// A failed eligibility rule: its name (for clients) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub detail: String,
}

impl Eligibility {
    /// Check `p` for an event starting at `starts_at`; `member` says whether
    /// the person holds an `active` union membership (the profile's
    /// self-declared `union_member_no` proves nothing); `trips_this_year` is
    /// the person's confirmed bookings of the same kind in that calendar year.
    pub fn check(
        &self,
        p: &Profile,
        member: bool,
        starts_at: DateTime<Utc>,
        trips_this_year: u32,
    ) -> Result<(), Refusal> {
        let refuse = |rule: &'static str, detail: &str| {
            Err(Refusal {
                rule,
                detail: detail.to_owned(),
            })
        };
        if self.union_members_only && !member {
            return refuse(
                "union_members_only",
                "for union members only: join a union (POST /v1/memberships with its join code)",
            );
        }
        if self.frontline_only && p.frontline != Some(true) {
            return refuse("frontline_only", "for front-line workers only");
        }
        if self.single_only && p.marital_status.is_none_or(|m| m == MaritalStatus::Married) {
            return refuse(
                "single_only",
                "for single workers only: set marital_status in your profile",
            );
        }
        if self.min_age.is_some() || self.max_age.is_some() {
            let Some(born) = p.birth_year else {
                return refuse(
                    "age",
                    "this event has an age range: add birth_year to your profile",
                );
            };
            let age = (starts_at.with_timezone(&SHANGHAI).year() - born).max(0) as u32;
            if self.min_age.is_some_and(|m| age < m) || self.max_age.is_some_and(|m| age > m) {
                return refuse(
                    "age",
                    &format!(
                        "for ages {}–{}",
                        self.min_age.map_or("".into(), |m| m.to_string()),
                        self.max_age.map_or("".into(), |m| m.to_string())
                    ),
                );
            }
        }
        if let Some(max) = self.max_per_year
            && trips_this_year >= max
        {
            return refuse(
                "max_per_year",
                &format!("at most {max} per calendar year, and you have {trips_this_year}"),
            );
        }
        Ok(())
    }
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Training => "training",
            EventKind::Recuperation => "recuperation",
            EventKind::Matchmaking => "matchmaking",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "training" => Ok(EventKind::Training),
            "recuperation" => Ok(EventKind::Recuperation),
            "matchmaking" => Ok(EventKind::Matchmaking),
            _ => Err(format!(
                "'{s}' is not one of: training, recuperation, matchmaking"
            )),
        }
    }
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Published => "published",
            EventStatus::Cancelled => "cancelled",
            EventStatus::Finished => "finished",
        }
    }
}

impl std::str::FromStr for EventStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "draft" => Ok(EventStatus::Draft),
            "published" => Ok(EventStatus::Published),
            "cancelled" => Ok(EventStatus::Cancelled),
            "finished" => Ok(EventStatus::Finished),
            _ => Err(format!(
                "'{s}' is not one of: draft, published, cancelled, finished"
            )),
        }
    }
}

/// The editable content of an event. Coordinates are WGS-84.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub kind: EventKind,
    /// Held at this site, or at `venue_name` (with `lat`/`lon`).
    pub site_id: Option<SiteId>,
    pub venue_name: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub title: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub capacity: u32,
    pub booking_opens_at: DateTime<Utc>,
    pub booking_closes_at: DateTime<Utc>,
    pub cancel_deadline: DateTime<Utc>,
    pub waitlist: bool,
    pub status: EventStatus,
    pub quotas: Vec<Quota>,
    pub eligibility: Eligibility,
    /// With a waitlist: a promoted person has this many hours to accept.
    pub offer_hours: Option<u32>,
    /// `Some` for a draw (`allocation: draw`): people apply in the booking
    /// window and one draw at `draw_at` orders them.
    pub draw: Option<Box<DrawPlan>>,
}

/// How an event's places are given: to the first who book, or by a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    #[default]
    FirstCome,
    Draw,
}

impl Allocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Allocation::FirstCome => "first_come",
            Allocation::Draw => "draw",
        }
    }
}

impl std::str::FromStr for Allocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first_come" => Ok(Allocation::FirstCome),
            "draw" => Ok(Allocation::Draw),
            _ => Err(format!("'{s}' is not one of: first_come, draw")),
        }
    }
}

/// What a manager sets for a draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawPlan {
    /// When the draw runs (at or after `booking_closes_at`).
    pub draw_at: DateTime<Utc>,
    /// In order: a person belongs to the first whose condition they meet.
    pub priority_groups: Vec<PriorityGroup>,
    /// Entered before the draw (a lottery result announced in advance);
    /// empty if none.
    pub public_value: String,
}

/// What a draw event has published: the commitment from the start, and
/// after the draw its values.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DrawSeal {
    pub seed_commitment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drawn_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrants_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
}

impl EventDraft {
    pub fn allocation(&self) -> Allocation {
        if self.draw.is_some() {
            Allocation::Draw
        } else {
            Allocation::FirstCome
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub draft: EventDraft,
    /// Seats held: confirmed, offered or checked in.
    pub held: u32,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// When the worker marked the no-shows after the event ended (`None`
    /// until then, and again when an edit moves the end into the future).
    pub settled_at: Option<DateTime<Utc>>,
    /// A draw's commitment and, once drawn, its values (`None` for first come).
    pub seal: Option<Box<DrawSeal>>,
}

impl Event {
    /// When the draw was made, if it was.
    pub fn drawn_at(&self) -> Option<DateTime<Utc>> {
        self.seal.as_ref().and_then(|s| s.drawn_at)
    }
}

impl Event {
    /// May `user` run this event (edit it, check people in, see attendees,
    /// cancel any booking)? Its site's managers and admins.
    pub fn managed_by(&self, user: &User) -> bool {
        self.draft.site_id.is_some_and(|s| user.manages(s)) || user.role == Role::Admin
    }
}

/// Where a booking stands: `confirmed` (a seat), `waitlisted`, `offered` (a freed seat to accept before `offer_expires_at`), `cancelled`, `checked_in`, `no_show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    Waitlisted,
    /// Promoted from the waitlist; must be accepted before `offer_expires_at`.
    Offered,
    Cancelled,
    CheckedIn,
    NoShow,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Waitlisted => "waitlisted",
            BookingStatus::Offered => "offered",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::CheckedIn => "checked_in",
            BookingStatus::NoShow => "no_show",
        }
    }

    /// Holds a seat.
    pub fn holds_seat(self) -> bool {
        matches!(
            self,
            BookingStatus::Confirmed | BookingStatus::Offered | BookingStatus::CheckedIn
        )
    }
}

impl std::str::FromStr for BookingStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            BookingStatus::Confirmed,
            BookingStatus::Waitlisted,
            BookingStatus::Offered,
            BookingStatus::Cancelled,
            BookingStatus::CheckedIn,
            BookingStatus::NoShow,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
        .ok_or_else(|| format!("unknown booking status '{s}'"))
    }
}

/// A booking as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Booking {
    #[schema(value_type = String)]
    pub id: String,
    #[schema(value_type = String)]
    pub event_id: String,
    pub status: BookingStatus,
    /// 1-based place on the waitlist, while waitlisted.
    pub waitlist_position: Option<u32>,
    /// The quota the seat counts against (`gender=female`), if any.
    pub quota: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub offer_expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub updated_at: DateTime<Utc>,
    /// For the holder of a confirmed booking: the signed code to show as a QR
    /// at the door.
    #[serde(default)]
    pub checkin_code: Option<String>,
}

/// What a booking attempt came to; stored whole for idempotent replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BookOutcome {
    Booked {
        booking: Booking,
    },
    AlreadyBooked {
        booking_id: String,
    },
    NotEligible {
        rule: String,
        detail: String,
    },
    Full,
    OutsideWindow {
        detail: String,
    },
    NotOpen {
        detail: String,
    },
    /// The event's places are drawn: apply instead.
    ByDraw {
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::Gender;
    use chrono::TimeZone;

    fn person() -> Profile {
        Profile {
            display_name: None,
            gender: Some(Gender::Female),
            birth_year: Some(1990),
            marital_status: Some(MaritalStatus::Single),
            union_member_no: Some("GH-1".into()),
            employer: None,
            frontline: Some(true),
        }
    }

    #[test]
    fn every_rule_refuses_by_name() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let all = Eligibility {
            union_members_only: true,
            frontline_only: true,
            single_only: true,
            min_age: Some(25),
            max_age: Some(40),
            max_per_year: Some(1),
        };
        assert_eq!(all.check(&person(), true, at, 0), Ok(()));
        let rule = |p: Profile, trips: u32| all.check(&p, true, at, trips).unwrap_err().rule;
        // A member number typed into the profile is not a membership.
        assert_eq!(
            all.check(&person(), false, at, 0).unwrap_err().rule,
            "union_members_only"
        );
        assert_eq!(
            rule(
                Profile {
                    frontline: Some(false),
                    ..person()
                },
                0
            ),
            "frontline_only"
        );
        assert_eq!(
            rule(
                Profile {
                    marital_status: Some(MaritalStatus::Married),
                    ..person()
                },
                0
            ),
            "single_only"
        );
        assert_eq!(
            rule(
                Profile {
                    marital_status: None,
                    ..person()
                },
                0
            ),
            "single_only"
        );
        assert_eq!(
            rule(
                Profile {
                    birth_year: Some(2005),
                    ..person()
                },
                0
            ),
            "age"
        );
        assert_eq!(
            rule(
                Profile {
                    birth_year: Some(1980),
                    ..person()
                },
                0
            ),
            "age"
        );
        assert_eq!(
            rule(
                Profile {
                    birth_year: None,
                    ..person()
                },
                0
            ),
            "age"
        );
        assert_eq!(rule(person(), 1), "max_per_year");
        // Divorced and widowed people are single for matchmaking.
        assert!(
            all.check(
                &Profile {
                    marital_status: Some(MaritalStatus::Divorced),
                    ..person()
                },
                true,
                at,
                0
            )
            .is_ok()
        );
        assert_eq!(
            Eligibility::default().check(&Profile::default(), false, at, 99),
            Ok(())
        );
    }

    #[test]
    fn quota_keys() {
        let q = vec![
            Quota {
                attribute: QuotaAttribute::Gender,
                value: "male".into(),
                seats: 15,
            },
            Quota {
                attribute: QuotaAttribute::Gender,
                value: "female".into(),
                seats: 15,
            },
        ];
        assert_eq!(
            Quota::key_for(&q, &person()),
            Some("gender=female".to_owned())
        );
        assert_eq!(Quota::key_for(&q, &Profile::default()), None);
    }
}
