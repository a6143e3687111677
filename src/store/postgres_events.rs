//! Events, bookings and sign-in codes on PostgreSQL: reads, and the
//! primitives of a write transaction ([`WriteTx`]). No rule lives here: the
//! commands in `store/commands.rs` read through these, ask `domain/`, and apply.
//!
//! A write transaction is READ COMMITTED. What keeps two nodes' commands from
//! interleaving is the lock each primitive takes before it reads: the event's
//! row (`lock_event`, `SELECT … FOR UPDATE`), and transaction-scoped advisory
//! locks for a person's Idempotency-Key, a person's seats across events, a
//! phone's codes and an address's code requests. Every statement after a lock
//! sees what was committed before it was granted. The locks are always taken
//! in one order (key, event, person; phone, address), so they cannot deadlock.
//! The `held` CHECK and the partial unique index of active bookings remain the
//! last line of defence.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};

use super::postgres::{PgStore, corrupt, lock_ns, secs};
use super::postgres_unions;
use super::{
    AttendeeRow, BookingView, EventStore, HOLDS, OtpRequester, StoreError, UserBooking,
    WaitlistTail, WriteTx,
};
use crate::domain::booking::{BookingRecord, Effect, HeldCounts, Transition, Waiting};
use crate::domain::event::{BookingId, BookingStatus, Event, EventDraft, EventId, EventKind};
use crate::domain::idempotency::IdempotencyRecord;
use crate::domain::otp::{CodeEffect, StoredCode};
use crate::domain::site::{Adcode, SiteId};
use crate::domain::union::{self, MembershipId, MembershipRecord, Union, UnionId};
use crate::domain::user::{Phone, UserId};

const EVENT_FIELDS: [&str; 26] = [
    "id",
    "kind",
    "site_id",
    "venue_name",
    "lat",
    "lon",
    "title",
    "description",
    "starts_at",
    "ends_at",
    "capacity",
    "booking_opens_at",
    "booking_closes_at",
    "cancel_deadline",
    "waitlist",
    "status",
    "quotas",
    "eligibility",
    "offer_hours",
    "held",
    "version",
    "updated_at",
    "settled_at",
    "draw_at",
    "drawn_at",
    "draw",
];
const BOOKING_COLUMNS: &str = "b.id, b.event_id, b.user_id, b.status, b.quota, b.waitlist_seq, \
     b.offer_expires_at, b.checked_in_at, b.created_at, b.updated_at";
/// Statuses that hold a seat, as SQL.
/// A waitlisted booking's position: those ahead of it, plus one.
const POSITION: &str = "CASE WHEN b.status = 'waitlisted' THEN (SELECT count(*) FROM bookings w \
     WHERE w.event_id = b.event_id AND w.status = 'waitlisted' AND w.waitlist_seq < b.waitlist_seq) + 1 END";

/// An event's columns from `events` aliased `alias`, each named `prefix` + its name.
fn event_columns(alias: &str, prefix: &str) -> String {
    EVENT_FIELDS
        .iter()
        .map(|c| match *c {
            "quotas" | "eligibility" | "draw" => format!("{alias}.{c}::text AS {prefix}{c}"),
            _ => format!("{alias}.{c} AS {prefix}{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn event_from_row(r: &PgRow, prefix: &str) -> Result<Event, StoreError> {
    let col = |c: &str| format!("{prefix}{c}");
    let id: i64 = r.try_get(col("id").as_str())?;
    let kind: String = r.try_get(col("kind").as_str())?;
    let status: String = r.try_get(col("status").as_str())?;
    let site: Option<i64> = r.try_get(col("site_id").as_str())?;
    let quotas: String = r.try_get(col("quotas").as_str())?;
    let eligibility: String = r.try_get(col("eligibility").as_str())?;
    let capacity: i32 = r.try_get(col("capacity").as_str())?;
    let held: i32 = r.try_get(col("held").as_str())?;
    let offer_hours: Option<i32> = r.try_get(col("offer_hours").as_str())?;
    let (draw, seal) = super::draws::draw_from(
        r.try_get(col("draw_at").as_str())?,
        r.try_get(col("drawn_at").as_str())?,
        r.try_get(col("draw").as_str())?,
    )?;
    Ok(Event {
        id: EventId::from_i64(id).ok_or_else(|| corrupt("event id", id))?,
        draft: EventDraft {
            kind: kind.parse().map_err(|e| corrupt("kind", e))?,
            site_id: site.and_then(SiteId::from_i64),
            venue_name: r.try_get(col("venue_name").as_str())?,
            lat: r.try_get(col("lat").as_str())?,
            lon: r.try_get(col("lon").as_str())?,
            title: r.try_get(col("title").as_str())?,
            description: r.try_get(col("description").as_str())?,
            starts_at: r.try_get(col("starts_at").as_str())?,
            ends_at: r.try_get(col("ends_at").as_str())?,
            capacity: capacity as u32,
            booking_opens_at: r.try_get(col("booking_opens_at").as_str())?,
            booking_closes_at: r.try_get(col("booking_closes_at").as_str())?,
            cancel_deadline: r.try_get(col("cancel_deadline").as_str())?,
            waitlist: r.try_get(col("waitlist").as_str())?,
            status: status.parse().map_err(|e| corrupt("status", e))?,
            quotas: serde_json::from_str(&quotas).map_err(|e| corrupt("quotas", e))?,
            eligibility: serde_json::from_str(&eligibility)
                .map_err(|e| corrupt("eligibility", e))?,
            offer_hours: offer_hours.map(|h| h as u32),
            draw,
        },
        held: held as u32,
        version: r.try_get(col("version").as_str())?,
        updated_at: r.try_get(col("updated_at").as_str())?,
        settled_at: r.try_get(col("settled_at").as_str())?,
        seal,
    })
}

fn booking_from_row(r: &PgRow) -> Result<BookingRecord, StoreError> {
    let id: i64 = r.try_get("id")?;
    let event: i64 = r.try_get("event_id")?;
    let status: String = r.try_get("status")?;
    Ok(BookingRecord {
        id: BookingId::from_i64(id).ok_or_else(|| corrupt("booking id", id))?,
        event: EventId::from_i64(event).ok_or_else(|| corrupt("event id", event))?,
        user: r.try_get("user_id")?,
        status: status.parse().map_err(|e| corrupt("booking status", e))?,
        quota: r.try_get("quota")?,
        waitlist_seq: r.try_get("waitlist_seq")?,
        offer_expires_at: r.try_get("offer_expires_at")?,
        checked_in_at: r.try_get("checked_in_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn view_from_row(r: &PgRow) -> Result<BookingView, StoreError> {
    let position: Option<i64> = r.try_get("position")?;
    Ok(BookingView {
        record: booking_from_row(r)?,
        waitlist_position: position.map(|p| p as u32),
    })
}

fn statuses(statuses: &[BookingStatus]) -> Vec<String> {
    statuses.iter().map(|s| s.as_str().to_owned()).collect()
}

#[async_trait]
impl EventStore for PgStore {
    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events e WHERE e.id = $1",
            event_columns("e", "")
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|r| event_from_row(r, "")).transpose()
    }

    async fn published_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events e WHERE e.status = 'published' AND e.ends_at >= $1 \
             AND e.starts_at <= $2 ORDER BY e.starts_at LIMIT 10000",
            event_columns("e", "")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| event_from_row(r, "")).collect()
    }

    async fn site_events(&self, site: SiteId) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT * FROM (SELECT {} FROM events e WHERE e.site_id = $1 \
             ORDER BY e.starts_at DESC LIMIT 500) AS latest ORDER BY starts_at",
            event_columns("e", "")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(site.as_i64())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| event_from_row(r, "")).collect()
    }

    async fn get_booking(&self, id: BookingId) -> Result<Option<BookingView>, StoreError> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS}, {POSITION} AS position FROM bookings b WHERE b.id = $1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(view_from_row).transpose()
    }

    async fn user_bookings(&self, user: UserId) -> Result<Vec<UserBooking>, StoreError> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS}, {POSITION} AS position, {} FROM bookings b \
             JOIN events e ON e.id = b.event_id WHERE b.user_id = $1 ORDER BY b.created_at, b.id",
            event_columns("e", "e_")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UserBooking {
                    booking: view_from_row(r)?,
                    event: event_from_row(r, "e_")?,
                })
            })
            .collect()
    }

    async fn attendees(&self, event: EventId) -> Result<Vec<AttendeeRow>, StoreError> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS}, u.phone AS phone, u.display_name AS display_name \
             FROM bookings b JOIN users u ON u.id = b.user_id WHERE b.event_id = $1 \
             ORDER BY b.created_at, b.waitlist_seq"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(event.as_i64())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let phone: String = r.try_get("phone")?;
                Ok(AttendeeRow {
                    booking: booking_from_row(r)?,
                    phone: phone.parse().map_err(|e| corrupt("phone", e))?,
                    display_name: r.try_get("display_name")?,
                })
            })
            .collect()
    }

    /// Skips events whose row another node holds right now (a command under
    /// way there): that node decides them.
    async fn events_with_lapsed_offers(
        &self,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT e.id FROM events e JOIN (SELECT event_id, min(offer_expires_at) AS due \
             FROM bookings WHERE status = 'offered' AND offer_expires_at <= $1 GROUP BY event_id) d \
             ON d.event_id = e.id ORDER BY d.due LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
        )
        .bind(at)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().filter_map(EventId::from_i64).collect())
    }

    async fn events_to_settle(
        &self,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM events WHERE settled_at IS NULL AND ends_at <= $1 ORDER BY ends_at \
             LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(at)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().filter_map(EventId::from_i64).collect())
    }

    async fn events_to_remind(
        &self,
        lead: chrono::Duration,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM events e WHERE status = 'published' AND starts_at > $1 AND starts_at <= $2              AND NOT EXISTS (SELECT 1 FROM event_reminders r WHERE r.event_id = e.id AND r.lead_hours = $3)              ORDER BY starts_at LIMIT $4 FOR UPDATE SKIP LOCKED",
        )
        .bind(at)
        .bind(at + lead)
        .bind(lead.num_hours() as i32)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().filter_map(EventId::from_i64).collect())
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
            .bind(secs(before))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// A write transaction on PostgreSQL (READ COMMITTED, bounded lock waits).
pub(super) struct PgTx(pub(super) Transaction<'static, Postgres>);

impl PgTx {
    /// Take a transaction-scoped advisory lock (released at commit or rollback).
    async fn lock(&mut self, namespace: i32, key: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(namespace)
            .bind(key)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn transition(&mut self, t: &Transition) -> Result<(), StoreError> {
        // The update and its log row in one statement.
        let logged: Option<i64> = sqlx::query_scalar(
            "WITH u AS (UPDATE bookings SET status = $1, offer_expires_at = $2, \
             checked_in_at = coalesce($3, checked_in_at), updated_at = $4 \
             WHERE id = $5 AND status = $6 RETURNING id, event_id) \
             INSERT INTO booking_log (event_id, booking_id, at, status, note) \
             SELECT event_id, id, $4, $1, $7 FROM u RETURNING booking_id",
        )
        .bind(t.to.as_str())
        .bind(t.offer_expires_at)
        .bind(t.checked_in_at)
        .bind(t.at)
        .bind(t.booking.as_i64())
        .bind(t.from.as_str())
        .bind(t.note)
        .fetch_optional(&mut *self.0)
        .await?;
        if logged.is_none() {
            return Err(StoreError::WrongState(format!(
                "booking {} is no longer {}",
                t.booking,
                t.from.as_str()
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl WriteTx for PgTx {
    async fn insert_event(
        &mut self,
        d: &EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let (secret, seal) = super::draws::new_secret(d);
        let sql = format!(
            "INSERT INTO events (id, kind, site_id, venue_name, lat, lon, title, description, \
             starts_at, ends_at, capacity, booking_opens_at, booking_closes_at, cancel_deadline, \
             waitlist, status, quotas, eligibility, offer_hours, held, version, updated_at, \
             settled_at, created_by, draw_at, draw, draw_secret) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18::jsonb, $19, 0, 1, $20, \
             NULL, $21, $22, $23::jsonb, $24) RETURNING {}",
            event_columns("events", "")
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(EventId::random().as_i64())
            .bind(d.kind.as_str())
            .bind(d.site_id.map(SiteId::as_i64))
            .bind(d.venue_name.clone())
            .bind(d.lat)
            .bind(d.lon)
            .bind(d.title.clone())
            .bind(d.description.clone())
            .bind(d.starts_at)
            .bind(d.ends_at)
            .bind(d.capacity as i32)
            .bind(d.booking_opens_at)
            .bind(d.booking_closes_at)
            .bind(d.cancel_deadline)
            .bind(d.waitlist)
            .bind(d.status.as_str())
            .bind(serde_json::to_string(&d.quotas).expect("quotas serialize"))
            .bind(serde_json::to_string(&d.eligibility).expect("eligibility serializes"))
            .bind(d.offer_hours.map(|h| h as i32))
            .bind(super::micros(at))
            .bind(actor)
            .bind(d.draw.as_ref().map(|p| p.draw_at))
            .bind(super::draws::draw_json(d, seal.as_ref()))
            .bind(secret)
            .fetch_one(&mut *self.0)
            .await?;
        event_from_row(&row, "")
    }

    async fn lock_event(&mut self, id: EventId) -> Result<Option<Event>, StoreError> {
        let sql = format!(
            "SELECT {} FROM events e WHERE e.id = $1 FOR UPDATE",
            event_columns("e", "")
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(|r| event_from_row(r, "")).transpose()
    }

    async fn booking(&mut self, id: BookingId) -> Result<Option<BookingRecord>, StoreError> {
        let sql = format!("SELECT {BOOKING_COLUMNS} FROM bookings b WHERE b.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(booking_from_row).transpose()
    }

    async fn bookings_of(
        &mut self,
        event: EventId,
        which: &[BookingStatus],
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings b WHERE b.event_id = $1 \
             AND b.status = ANY($2) ORDER BY b.created_at, b.id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(event.as_i64())
            .bind(statuses(which))
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter().map(booking_from_row).collect()
    }

    async fn held_counts(&mut self, event: EventId) -> Result<HeldCounts, StoreError> {
        let sql = format!(
            "SELECT quota, count(*) FROM bookings WHERE event_id = $1 AND status IN {HOLDS} \
             GROUP BY quota"
        );
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(event.as_i64())
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(|(q, n)| (q, n as u32)).collect())
    }

    async fn waitlist(&mut self, event: EventId) -> Result<Vec<Waiting>, StoreError> {
        let rows: Vec<(i64, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, user_id, quota, waitlist_seq FROM bookings \
             WHERE event_id = $1 AND status = 'waitlisted' ORDER BY waitlist_seq",
        )
        .bind(event.as_i64())
        .fetch_all(&mut *self.0)
        .await?;
        rows.into_iter()
            .map(|(id, user, quota, seq)| {
                Ok(Waiting {
                    id: BookingId::from_i64(id).ok_or_else(|| corrupt("booking id", id))?,
                    user,
                    quota,
                    seq,
                })
            })
            .collect()
    }

    async fn seats(&mut self, event: EventId) -> Result<(HeldCounts, WaitlistTail), StoreError> {
        let rows = sqlx::query_as(AssertSqlSafe(super::seats_sql("$1")))
            .bind(event.as_i64())
            .fetch_all(&mut *self.0)
            .await?;
        super::seats_from_rows(rows)
    }

    async fn active_bookings(
        &mut self,
        event: EventId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, BookingId)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT user_id, id FROM bookings WHERE event_id = $1 AND user_id = ANY($2) \
             AND status IN ('confirmed', 'waitlisted', 'offered', 'checked_in')",
        )
        .bind(event.as_i64())
        .bind(users)
        .fetch_all(&mut *self.0)
        .await?;
        super::active_pairs(rows)
    }

    async fn insert_bookings(&mut self, records: &[BookingRecord]) -> Result<(), StoreError> {
        // Column arrays, one statement for the rows and their log.
        let col = |f: &dyn Fn(&BookingRecord) -> i64| records.iter().map(f).collect::<Vec<_>>();
        let ids = col(&|b| b.id.as_i64());
        let events = col(&|b| b.event.as_i64());
        let users = col(&|b| b.user);
        let statuses: Vec<&str> = records.iter().map(|b| b.status.as_str()).collect();
        let quotas: Vec<Option<String>> = records.iter().map(|b| b.quota.clone()).collect();
        let seqs: Vec<Option<i64>> = records.iter().map(|b| b.waitlist_seq).collect();
        let offers: Vec<Option<DateTime<Utc>>> =
            records.iter().map(|b| b.offer_expires_at).collect();
        let checked: Vec<Option<DateTime<Utc>>> = records.iter().map(|b| b.checked_in_at).collect();
        let created: Vec<DateTime<Utc>> = records.iter().map(|b| b.created_at).collect();
        let updated: Vec<DateTime<Utc>> = records.iter().map(|b| b.updated_at).collect();
        sqlx::query(
            "WITH ins AS (INSERT INTO bookings (id, event_id, user_id, status, quota, \
             waitlist_seq, offer_expires_at, checked_in_at, created_at, updated_at) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
             $6::bigint[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[]) \
             RETURNING id, event_id, status, created_at) \
             INSERT INTO booking_log (event_id, booking_id, at, status, note) \
             SELECT event_id, id, created_at, status, NULL FROM ins",
        )
        .bind(ids)
        .bind(events)
        .bind(users)
        .bind(statuses)
        .bind(quotas)
        .bind(seqs)
        .bind(offers)
        .bind(checked)
        .bind(created)
        .bind(updated)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn seats_held_in(
        &mut self,
        user: UserId,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        // Two events booked by one person at once on two nodes: the second
        // waits here and then counts the first (a yearly limit holds).
        self.lock(lock_ns::USER, &user.to_string()).await?;
        let sql = format!(
            "SELECT count(*) FROM bookings b JOIN events e ON e.id = b.event_id \
             WHERE b.user_id = $1 AND b.status IN {HOLDS} AND e.kind = $2 \
             AND e.starts_at >= $3 AND e.starts_at < $4"
        );
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(user)
            .bind(kind.as_str())
            .bind(from)
            .bind(to)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(n as u32)
    }

    async fn reminded(&mut self, event: EventId, lead_hours: u32) -> Result<bool, StoreError> {
        let sent: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM event_reminders WHERE event_id = $1 AND lead_hours = $2",
        )
        .bind(event.as_i64())
        .bind(lead_hours as i32)
        .fetch_optional(&mut *self.0)
        .await?;
        Ok(sent.is_some())
    }

    async fn apply(&mut self, effects: &[Effect]) -> Result<(), StoreError> {
        for effect in effects {
            match effect {
                Effect::Insert(b) => self.insert_bookings(std::slice::from_ref(b)).await?,
                Effect::Transition(t) => self.transition(t).await?,
                Effect::PutApplication(a) => {
                    super::draws::DrawTx::put_application(self, a).await?;
                }
                Effect::SaveEvent(e) => {
                    let d = &e.draft;
                    sqlx::query(
                        "UPDATE events SET title = $1, description = $2, starts_at = $3, \
                         ends_at = $4, capacity = $5, booking_opens_at = $6, \
                         booking_closes_at = $7, cancel_deadline = $8, waitlist = $9, \
                         status = $10, held = $11, version = $12, updated_at = $13, \
                         settled_at = $14, draw_at = $16, drawn_at = $17, draw = $18::jsonb \
                         WHERE id = $15",
                    )
                    .bind(d.title.clone())
                    .bind(d.description.clone())
                    .bind(d.starts_at)
                    .bind(d.ends_at)
                    .bind(d.capacity as i32)
                    .bind(d.booking_opens_at)
                    .bind(d.booking_closes_at)
                    .bind(d.cancel_deadline)
                    .bind(d.waitlist)
                    .bind(d.status.as_str())
                    .bind(e.held as i32)
                    .bind(e.version)
                    .bind(e.updated_at)
                    .bind(e.settled_at)
                    .bind(e.id.as_i64())
                    .bind(d.draw.as_ref().map(|p| p.draw_at))
                    .bind(e.drawn_at())
                    .bind(super::draws::draw_json(d, e.seal.as_deref()))
                    .execute(&mut *self.0)
                    .await?;
                }
                Effect::Notify(n) => {
                    super::postgres_notify::insert_notice(&mut self.0, n).await?;
                }
                Effect::Reminded {
                    event,
                    lead_hours,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO event_reminders (event_id, lead_hours, at) VALUES ($1, $2, $3)",
                    )
                    .bind(event.as_i64())
                    .bind(*lead_hours as i32)
                    .bind(*at)
                    .execute(&mut *self.0)
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn lock_memberships(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        postgres_unions::lock_memberships(&mut self.0, user).await
    }

    async fn union(&mut self, id: UnionId) -> Result<Option<Union>, StoreError> {
        postgres_unions::union_in(&mut self.0, id).await
    }

    async fn membership(
        &mut self,
        id: MembershipId,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        postgres_unions::membership_in(&mut self.0, id).await
    }

    async fn member_seq(&mut self, adcode: Adcode) -> Result<u64, StoreError> {
        postgres_unions::member_seq_in(&mut self.0, adcode).await
    }

    async fn apply_memberships(&mut self, effects: &[union::Effect]) -> Result<(), StoreError> {
        for e in effects {
            match e {
                // Notices go to the inbox and the outbox as the booking rules' do.
                union::Effect::Notify(n) => self.apply(&[Effect::Notify(n.clone())]).await?,
                e => {
                    postgres_unions::apply_membership_effects(&mut self.0, std::slice::from_ref(e))
                        .await?
                }
            }
        }
        Ok(())
    }

    async fn active_membership(
        &mut self,
        user: UserId,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        postgres_unions::active_membership_in(&mut self.0, user).await
    }

    async fn idempotencies(
        &mut self,
        keys: &[(UserId, String)],
    ) -> Result<Vec<(UserId, String, IdempotencyRecord)>, StoreError> {
        let users: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        // A retry racing its first attempt on another node waits here until
        // the first commits, then reads (and replays) its answer. The locks
        // are taken in the order given (sorted by the batch).
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock($1, hashtext(u::text || ':' || k))) \
             FROM unnest($2::bigint[], $3::text[]) AS t(u, k)",
        )
        .bind(lock_ns::IDEMPOTENCY)
        .bind(&users)
        .bind(&names)
        .execute(&mut *self.0)
        .await?;
        let rows: Vec<(i64, String, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT i.user_id, i.key, i.request_hash, i.body, i.created_at \
             FROM unnest($1::bigint[], $2::text[]) AS t(u, k) \
             JOIN idempotency i ON i.user_id = t.u AND i.key = t.k",
        )
        .bind(&users)
        .bind(&names)
        .fetch_all(&mut *self.0)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user, key, request_hash, body, created_at)| {
                (
                    user,
                    key,
                    IdempotencyRecord {
                        request_hash,
                        body,
                        created_at,
                    },
                )
            })
            .collect())
    }

    async fn put_idempotencies(
        &mut self,
        records: &[(UserId, String, IdempotencyRecord)],
    ) -> Result<(), StoreError> {
        let users: Vec<i64> = records.iter().map(|r| r.0).collect();
        let keys: Vec<&str> = records.iter().map(|r| r.1.as_str()).collect();
        let hashes: Vec<&str> = records.iter().map(|r| r.2.request_hash.as_str()).collect();
        let bodies: Vec<&str> = records.iter().map(|r| r.2.body.as_str()).collect();
        let created: Vec<DateTime<Utc>> = records.iter().map(|r| secs(r.2.created_at)).collect();
        sqlx::query(
            "INSERT INTO idempotency (user_id, key, request_hash, status, body, created_at) \
             SELECT u, k, h, 0, b, c FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], \
             $5::timestamptz[]) AS t(u, k, h, b, c) \
             ON CONFLICT (user_id, key) DO UPDATE SET \
             request_hash = excluded.request_hash, status = excluded.status, \
             body = excluded.body, created_at = excluded.created_at",
        )
        .bind(users)
        .bind(keys)
        .bind(hashes)
        .bind(bodies)
        .bind(created)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn otp_requests(
        &mut self,
        by: OtpRequester<'_>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        // Concurrent requests for one phone (or from one address) on several
        // nodes count one after the other.
        let (sql, ns, key) = match by {
            OtpRequester::Phone(p) => (
                "SELECT at FROM otp_requests WHERE phone = $1 AND at > $2 ORDER BY at DESC LIMIT $3",
                lock_ns::PHONE,
                p.as_str(),
            ),
            OtpRequester::Ip(ip) => (
                "SELECT at FROM otp_requests WHERE ip = $1 AND at > $2 ORDER BY at DESC LIMIT $3",
                lock_ns::IP,
                ip,
            ),
        };
        self.lock(ns, key).await?;
        Ok(sqlx::query_scalar(sql)
            .bind(key)
            .bind(secs(since))
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn put_otp(
        &mut self,
        phone: &Phone,
        ip: &str,
        at: DateTime<Utc>,
        code: &StoredCode,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO otp_requests (phone, ip, at) VALUES ($1, $2, $3)")
            .bind(phone.as_str())
            .bind(ip)
            .bind(secs(at))
            .execute(&mut *self.0)
            .await?;
        // Forget old requests without waiting for another node doing the same.
        sqlx::query(
            "DELETE FROM otp_requests WHERE ctid IN (SELECT ctid FROM otp_requests \
             WHERE at < $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        )
        .bind(secs(forget_before))
        .execute(&mut *self.0)
        .await?;
        sqlx::query(
            "INSERT INTO otp_codes (phone, code_hash, expires_at, attempts, dev_code) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (phone) DO UPDATE SET \
             code_hash = excluded.code_hash, expires_at = excluded.expires_at, \
             attempts = excluded.attempts, dev_code = excluded.dev_code",
        )
        .bind(phone.as_str())
        .bind(&code.code_hash)
        .bind(secs(code.expires_at))
        .bind(code.attempts)
        .bind(code.dev_code.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn stored_code(&mut self, phone: &Phone) -> Result<Option<StoredCode>, StoreError> {
        // Two wrong tries at once on two nodes both count.
        self.lock(lock_ns::PHONE, phone.as_str()).await?;
        let row: Option<(String, DateTime<Utc>, i64, Option<String>)> = sqlx::query_as(
            "SELECT code_hash, expires_at, attempts, dev_code FROM otp_codes WHERE phone = $1",
        )
        .bind(phone.as_str())
        .fetch_optional(&mut *self.0)
        .await?;
        Ok(
            row.map(|(code_hash, expires_at, attempts, dev_code)| StoredCode {
                code_hash,
                expires_at,
                attempts,
                dev_code,
            }),
        )
    }

    async fn apply_code(&mut self, phone: &Phone, effect: CodeEffect) -> Result<(), StoreError> {
        let sql = match effect {
            CodeEffect::Consume => "DELETE FROM otp_codes WHERE phone = $1",
            CodeEffect::CountWrongTry => {
                "UPDATE otp_codes SET attempts = attempts + 1 WHERE phone = $1"
            }
        };
        sqlx::query(sql)
            .bind(phone.as_str())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        // Without a statement bound: a cancelled wait for the standby would
        // acknowledge what a failover may lose (see `postgres::commit`).
        super::postgres::commit(self.0).await
    }
}
