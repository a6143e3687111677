//! What the booking benchmarks share.

use chrono::Utc;
use yizhan::domain::event::{Eligibility, EventDraft, EventKind, EventStatus};

/// A published course a month away, bookable now, with a waitlist.
#[allow(dead_code)] // not every bench books
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
        draw: None,
    }
}

/// The PostgreSQL database to measure, if one is given.
#[allow(dead_code)] // not every bench measures PostgreSQL
pub async fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("YIZHAN_BENCH_PG_URL") {
        return Some(url);
    }
    let host = std::env::var("PGHOST").ok()?;
    let host = if host.starts_with('/') {
        "localhost".into()
    } else {
        host
    };
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let server = format!(
        "postgres://{}:{}@{}:{}",
        var("PGUSER", "postgres"),
        var("PGPASSWORD", ""),
        host,
        var("PGPORT", "5432")
    );
    use sqlx::{Connection, Executor};
    let mut c = sqlx::PgConnection::connect(&format!("{server}/{}", var("PGDATABASE", "postgres")))
        .await
        .ok()?;
    let name = format!("yizhan_bench_{:08x}", rand::random::<u32>());
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .ok()?;
    Some(format!("{server}/{name}"))
}
