//! What the booking benchmarks share.

use chrono::Utc;
use yizhan::domain::event::{Eligibility, EventDraft, EventKind, EventStatus};

/// A published course a month away, bookable now, with a waitlist.
pub fn event(capacity: u32) -> EventDraft {
    let now = Utc::now();
    EventDraft {
        kind: EventKind::Training,
        site_id: None,
        venue_name: Some("职工之家".into()),
        lat: 36.65,
        lon: 117.12,
        title: "技能培训".into(),
        description: String::new(),
        starts_at: now + chrono::Duration::days(30),
        ends_at: now + chrono::Duration::days(31),
        capacity,
        booking_opens_at: now - chrono::Duration::hours(1),
        booking_closes_at: now + chrono::Duration::days(29),
        cancel_deadline: now + chrono::Duration::days(28),
        waitlist: true,
        status: EventStatus::Published,
        quotas: vec![],
        eligibility: Eligibility::default(),
        offer_hours: None,
    }
}
