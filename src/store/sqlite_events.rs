//! Events, bookings and sign-in codes on SQLite: reads, and the primitives
//! of a write transaction ([`WriteTx`]). No rule lives here: the commands in
//! `store/commands.rs` read through these, ask `domain/`, and apply.
//!
//! A write transaction is `BEGIN IMMEDIATE` (SQLite's single writer), so
//! reading a snapshot and applying its effects can never interleave with
//! another command; the `held <= capacity` CHECK on `events` and the partial
//! unique index of active bookings are the last line of defence.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::sqlite::{SqliteStore, corrupt, fmt_time, parse_time};
use super::sqlite_unions;
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

const EVENT_COLUMNS: &str = "id, kind, site_id, venue_name, lat, lon, title, description, starts_at, \
     ends_at, capacity, booking_opens_at, booking_closes_at, cancel_deadline, waitlist, status, quotas, \
     eligibility, offer_hours, held, version, updated_at, settled_at, draw_at, drawn_at, draw";
const BOOKING_COLUMNS: &str = "id, event_id, user_id, status, quota, waitlist_seq, offer_expires_at, \
     checked_in_at, created_at, updated_at";
/// Statuses that hold a seat, as SQL.
/// A waitlisted booking's position: those ahead of it, plus one.
const POSITION: &str = "CASE WHEN b.status = 'waitlisted' THEN (SELECT count(*) FROM bookings w \
     WHERE w.event_id = b.event_id AND w.status = 'waitlisted' AND w.waitlist_seq < b.waitlist_seq) + 1 END";

fn time<R: Columns>(r: &R, col: &str) -> Result<DateTime<Utc>, StoreError> {
    let s: String = r.col(col)?;
    parse_time(&s).map_err(|e| corrupt(col, e))
}

pub(super) fn opt_time<R: Columns>(r: &R, col: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let s: Option<String> = r.col(col)?;
    s.map(|t| parse_time(&t))
        .transpose()
        .map_err(|e| corrupt(col, e))
}

fn event_from_row<R: Columns>(r: &R) -> Result<Event, StoreError> {
    let id: i64 = r.col("id")?;
    let kind: String = r.col("kind")?;
    let status: String = r.col("status")?;
    let site: Option<i64> = r.col("site_id")?;
    let quotas: String = r.col("quotas")?;
    let eligibility: String = r.col("eligibility")?;
    let capacity: i64 = r.col("capacity")?;
    let held: i64 = r.col("held")?;
    let offer_hours: Option<i64> = r.col("offer_hours")?;
    let waitlist: i64 = r.col("waitlist")?;
    let (draw, seal) = super::draws::draw_from(
        opt_time(r, "draw_at")?,
        opt_time(r, "drawn_at")?,
        r.col("draw")?,
    )?;
    Ok(Event {
        id: EventId::from_i64(id).ok_or_else(|| corrupt("event id", id))?,
        draft: EventDraft {
            kind: kind.parse().map_err(|e| corrupt("kind", e))?,
            site_id: site.and_then(SiteId::from_i64),
            venue_name: r.col("venue_name")?,
            lat: r.col("lat")?,
            lon: r.col("lon")?,
            title: r.col("title")?,
            description: r.col("description")?,
            starts_at: time(r, "starts_at")?,
            ends_at: time(r, "ends_at")?,
            capacity: capacity as u32,
            booking_opens_at: time(r, "booking_opens_at")?,
            booking_closes_at: time(r, "booking_closes_at")?,
            cancel_deadline: time(r, "cancel_deadline")?,
            waitlist: waitlist != 0,
            status: status.parse().map_err(|e| corrupt("status", e))?,
            quotas: serde_json::from_str(&quotas).map_err(|e| corrupt("quotas", e))?,
            eligibility: serde_json::from_str(&eligibility)
                .map_err(|e| corrupt("eligibility", e))?,
            offer_hours: offer_hours.map(|h| h as u32),
            draw,
        },
        held: held as u32,
        version: r.col("version")?,
        updated_at: time(r, "updated_at")?,
        settled_at: opt_time(r, "settled_at")?,
        seal,
    })
}

fn booking_from_row(r: &SqliteRow) -> Result<BookingRecord, StoreError> {
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
        offer_expires_at: opt_time(r, "offer_expires_at")?,
        checked_in_at: opt_time(r, "checked_in_at")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn view_from_row(r: &SqliteRow) -> Result<BookingView, StoreError> {
    let position: Option<i64> = r.try_get("position")?;
    Ok(BookingView {
        record: booking_from_row(r)?,
        waitlist_position: position.map(|p| p as u32),
    })
}

/// `b.id, b.event_id, …` for a query that aliases bookings as `b`.
fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn statuses_sql(statuses: &[BookingStatus]) -> String {
    let list: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", list.join(", "))
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn published_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE status = 'published' AND ends_at >= ? AND starts_at <= ? ORDER BY starts_at LIMIT 10000"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(fmt_time(from))
            .bind(fmt_time(to))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn site_events(&self, site: SiteId) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events WHERE site_id = ? \
             ORDER BY starts_at DESC LIMIT 500) ORDER BY starts_at"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(site.as_i64())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn get_booking(&self, id: BookingId) -> Result<Option<BookingView>, StoreError> {
        let sql = format!(
            "SELECT {}, {POSITION} AS position FROM bookings b WHERE b.id = ?",
            prefixed(BOOKING_COLUMNS, "b")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(view_from_row).transpose()
    }

    async fn user_bookings(&self, user: UserId) -> Result<Vec<UserBooking>, StoreError> {
        let sql = format!(
            "SELECT {}, {POSITION} AS position, {} FROM bookings b JOIN events e ON e.id = b.event_id \
             WHERE b.user_id = ? ORDER BY b.created_at",
            prefixed(BOOKING_COLUMNS, "b"),
            EVENT_COLUMNS
                .split(", ")
                .map(|c| format!("e.{c} AS e_{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UserBooking {
                    booking: view_from_row(r)?,
                    event: event_from_row(&Renamed {
                        row: r,
                        prefix: "e_",
                    })?,
                })
            })
            .collect()
    }

    async fn attendees(&self, event: EventId) -> Result<Vec<AttendeeRow>, StoreError> {
        let sql = format!(
            "SELECT {}, u.phone AS phone, u.display_name AS display_name FROM bookings b \
             JOIN users u ON u.id = b.user_id WHERE b.event_id = ? ORDER BY b.created_at, b.waitlist_seq",
            prefixed(BOOKING_COLUMNS, "b")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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

    async fn events_with_lapsed_offers(
        &self,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT event_id FROM bookings WHERE status = 'offered' AND offer_expires_at <= ? \
             GROUP BY event_id ORDER BY min(offer_expires_at) LIMIT ?",
        )
        .bind(fmt_time(at))
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
            "SELECT id FROM events WHERE settled_at IS NULL AND ends_at <= ? ORDER BY ends_at LIMIT ?",
        )
        .bind(fmt_time(at))
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
            "SELECT id FROM events e WHERE status = 'published' AND starts_at > ? AND starts_at <= ?              AND NOT EXISTS (SELECT 1 FROM event_reminders r WHERE r.event_id = e.id AND r.lead_hours = ?)              ORDER BY starts_at LIMIT ?",
        )
        .bind(fmt_time(at))
        .bind(fmt_time(at + lead))
        .bind(lead.num_hours())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().filter_map(EventId::from_i64).collect())
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
            .bind(before.timestamp())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// Read a row's `prefix`-ed columns under their plain names, for a joined
/// query that selects `e.x AS e_x`.
struct Renamed<'a> {
    row: &'a SqliteRow,
    prefix: &'static str,
}

/// The few accessors the row mappers use, over plain and prefixed rows.
pub(super) trait Columns {
    fn col<'r, T>(&'r self, col: &str) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>;
}

impl Columns for SqliteRow {
    fn col<'r, T>(&'r self, col: &str) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.try_get(col)
    }
}

impl Columns for Renamed<'_> {
    fn col<'r, T>(&'r self, col: &str) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.row.try_get(format!("{}{col}", self.prefix).as_str())
    }
}

async fn load_event(
    tx: &mut Transaction<'static, Sqlite>,
    id: EventId,
) -> Result<Option<Event>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_i64())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(event_from_row).transpose()
}

/// A write transaction on SQLite: `BEGIN IMMEDIATE` holds the database's
/// write lock from the first statement to commit.
pub(super) struct SqliteTx(pub(super) Transaction<'static, Sqlite>);

impl SqliteTx {
    async fn transition(&mut self, t: &Transition) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE bookings SET status = ?, offer_expires_at = ?, \
             checked_in_at = coalesce(?, checked_in_at), updated_at = ? WHERE id = ? AND status = ?",
        )
        .bind(t.to.as_str())
        .bind(t.offer_expires_at.map(fmt_time))
        .bind(t.checked_in_at.map(fmt_time))
        .bind(fmt_time(t.at))
        .bind(t.booking.as_i64())
        .bind(t.from.as_str())
        .execute(&mut *self.0)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::WrongState(format!(
                "booking {} is no longer {}",
                t.booking,
                t.from.as_str()
            )));
        }
        self.log(t.booking, t.to, t.at, t.note).await
    }

    async fn log(
        &mut self,
        booking: BookingId,
        status: BookingStatus,
        at: DateTime<Utc>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO booking_log (booking_id, at, status, note) VALUES (?, ?, ?, ?)")
            .bind(booking.as_i64())
            .bind(fmt_time(at))
            .bind(status.as_str())
            .bind(note)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn insert_event(
        &mut self,
        d: &EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let id = EventId::random();
        let (secret, seal) = super::draws::new_secret(d);
        let sql = format!(
            "INSERT INTO events ({EVENT_COLUMNS}, created_by, draw_secret) VALUES \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, NULL, ?, NULL, ?, ?, ?)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .bind(d.kind.as_str())
            .bind(d.site_id.map(SiteId::as_i64))
            .bind(d.venue_name.clone())
            .bind(d.lat)
            .bind(d.lon)
            .bind(d.title.clone())
            .bind(d.description.clone())
            .bind(fmt_time(d.starts_at))
            .bind(fmt_time(d.ends_at))
            .bind(i64::from(d.capacity))
            .bind(fmt_time(d.booking_opens_at))
            .bind(fmt_time(d.booking_closes_at))
            .bind(fmt_time(d.cancel_deadline))
            .bind(i64::from(d.waitlist))
            .bind(d.status.as_str())
            .bind(serde_json::to_string(&d.quotas).expect("quotas serialize"))
            .bind(serde_json::to_string(&d.eligibility).expect("eligibility serializes"))
            .bind(d.offer_hours.map(i64::from))
            .bind(fmt_time(super::micros(at)))
            .bind(d.draw.as_ref().map(|p| fmt_time(p.draw_at)))
            .bind(super::draws::draw_json(d, seal.as_ref()))
            .bind(actor)
            .bind(secret)
            .execute(&mut *self.0)
            .await?;
        load_event(&mut self.0, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn lock_event(&mut self, id: EventId) -> Result<Option<Event>, StoreError> {
        load_event(&mut self.0, id).await
    }

    async fn booking(&mut self, id: BookingId) -> Result<Option<BookingRecord>, StoreError> {
        let sql = format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(booking_from_row).transpose()
    }

    async fn bookings_of(
        &mut self,
        event: EventId,
        statuses: &[BookingStatus],
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings WHERE event_id = ? AND status IN {} \
             ORDER BY created_at, id",
            statuses_sql(statuses)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event.as_i64())
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter().map(booking_from_row).collect()
    }

    async fn held_counts(&mut self, event: EventId) -> Result<HeldCounts, StoreError> {
        let sql = format!(
            "SELECT quota, count(*) FROM bookings WHERE event_id = ? AND status IN {HOLDS} GROUP BY quota"
        );
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(event.as_i64())
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(|(q, n)| (q, n as u32)).collect())
    }

    async fn waitlist(&mut self, event: EventId) -> Result<Vec<Waiting>, StoreError> {
        let rows: Vec<(i64, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, user_id, quota, waitlist_seq FROM bookings \
             WHERE event_id = ? AND status = 'waitlisted' ORDER BY waitlist_seq",
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
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(super::seats_sql("?1")))
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
            // Each person probed in `bookings_one_active`, not the event scanned.
            "SELECT b.user_id, b.id FROM json_each(?1) j CROSS JOIN bookings b \
             ON b.event_id = ?2 AND b.user_id = j.value \
             WHERE b.status IN ('confirmed', 'waitlisted', 'offered', 'checked_in')",
        )
        .bind(serde_json::to_string(users).expect("ids serialise"))
        .bind(event.as_i64())
        .fetch_all(&mut *self.0)
        .await?;
        super::active_pairs(rows)
    }

    async fn insert_bookings(&mut self, records: &[BookingRecord]) -> Result<(), StoreError> {
        self.insert_booked(records, &[]).await
    }

    async fn insert_booked(
        &mut self,
        bookings: &[BookingRecord],
        keys: &[(UserId, String, IdempotencyRecord)],
    ) -> Result<(), StoreError> {
        // Each table's rows as one JSON array (SQLite's unnest), and all
        // three statements in one query: one round trip to SQLite's thread.
        let rows: Vec<_> = bookings
            .iter()
            .map(|b| {
                (
                    b.id.as_i64(),
                    b.event.as_i64(),
                    b.user,
                    b.status.as_str(),
                    b.quota.as_deref(),
                    b.waitlist_seq,
                    b.offer_expires_at.map(fmt_time),
                    b.checked_in_at.map(fmt_time),
                    fmt_time(b.created_at),
                    fmt_time(b.updated_at),
                )
            })
            .collect();
        let answers: Vec<_> = keys
            .iter()
            .map(|(user, key, r)| {
                (
                    user,
                    key,
                    &r.request_hash,
                    &r.body,
                    r.created_at.timestamp(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO bookings (id, event_id, user_id, status, quota, waitlist_seq, \
             offer_expires_at, checked_in_at, created_at, updated_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
             value ->> 6, value ->> 7, value ->> 8, value ->> 9 FROM json_each(?1); \
             INSERT INTO booking_log (booking_id, at, status, note) \
             SELECT value ->> 0, value ->> 8, value ->> 3, NULL FROM json_each(?1); \
             INSERT OR REPLACE INTO idempotency (user_id, key, request_hash, status, body, created_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, 0, value ->> 3, value ->> 4 \
             FROM json_each(?2)",
        )
        .bind(serde_json::to_string(&rows).expect("rows serialise"))
        .bind(serde_json::to_string(&answers).expect("rows serialise"))
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
        let sql = format!(
            "SELECT count(*) FROM bookings b JOIN events e ON e.id = b.event_id WHERE b.user_id = ? \
             AND b.status IN {HOLDS} AND e.kind = ? AND e.starts_at >= ? AND e.starts_at < ?"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .bind(kind.as_str())
            .bind(fmt_time(from))
            .bind(fmt_time(to))
            .fetch_one(&mut *self.0)
            .await?;
        Ok(n as u32)
    }

    async fn reminded(&mut self, event: EventId, lead_hours: u32) -> Result<bool, StoreError> {
        let sent: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM event_reminders WHERE event_id = ? AND lead_hours = ?",
        )
        .bind(event.as_i64())
        .bind(i64::from(lead_hours))
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
                Effect::Notify(n) => {
                    super::sqlite_notify::insert_notice(&mut self.0, n).await?;
                }
                Effect::Reminded {
                    event,
                    lead_hours,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO event_reminders (event_id, lead_hours, at) VALUES (?, ?, ?)",
                    )
                    .bind(event.as_i64())
                    .bind(i64::from(*lead_hours))
                    .bind(fmt_time(*at))
                    .execute(&mut *self.0)
                    .await?;
                }
                Effect::SaveEvent(e) => {
                    let d = &e.draft;
                    sqlx::query(
                        "UPDATE events SET title = ?, description = ?, starts_at = ?, ends_at = ?, \
                         capacity = ?, booking_opens_at = ?, booking_closes_at = ?, cancel_deadline = ?, \
                         waitlist = ?, status = ?, held = ?, version = ?, updated_at = ?, settled_at = ?, \
                         draw_at = ?, drawn_at = ?, draw = ? WHERE id = ?",
                    )
                    .bind(d.title.clone())
                    .bind(d.description.clone())
                    .bind(fmt_time(d.starts_at))
                    .bind(fmt_time(d.ends_at))
                    .bind(i64::from(d.capacity))
                    .bind(fmt_time(d.booking_opens_at))
                    .bind(fmt_time(d.booking_closes_at))
                    .bind(fmt_time(d.cancel_deadline))
                    .bind(i64::from(d.waitlist))
                    .bind(d.status.as_str())
                    .bind(i64::from(e.held))
                    .bind(e.version)
                    .bind(fmt_time(e.updated_at))
                    .bind(e.settled_at.map(fmt_time))
                    .bind(d.draw.as_ref().map(|p| fmt_time(p.draw_at)))
                    .bind(e.drawn_at().map(fmt_time))
                    .bind(super::draws::draw_json(d, e.seal.as_deref()))
                    .bind(e.id.as_i64())
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
        sqlite_unions::open_memberships(&mut self.0, user).await
    }

    async fn union(&mut self, id: UnionId) -> Result<Option<Union>, StoreError> {
        sqlite_unions::union_in(&mut self.0, id).await
    }

    async fn membership(
        &mut self,
        id: MembershipId,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        sqlite_unions::membership_in(&mut self.0, id).await
    }

    async fn member_seq(&mut self, adcode: Adcode) -> Result<u64, StoreError> {
        sqlite_unions::member_seq_in(&mut self.0, adcode).await
    }

    async fn apply_memberships(&mut self, effects: &[union::Effect]) -> Result<(), StoreError> {
        for e in effects {
            match e {
                // Notices go to the inbox and the outbox as the booking rules' do.
                union::Effect::Notify(n) => self.apply(&[Effect::Notify(n.clone())]).await?,
                e => {
                    sqlite_unions::apply_membership_effects(&mut self.0, std::slice::from_ref(e))
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
        sqlite_unions::active_membership_in(&mut self.0, user).await
    }

    async fn idempotencies(
        &mut self,
        keys: &[(UserId, String)],
    ) -> Result<Vec<(UserId, String, IdempotencyRecord)>, StoreError> {
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT i.user_id, i.key, i.request_hash, i.body, i.created_at \
             FROM json_each(?) j CROSS JOIN idempotency i \
             ON i.user_id = j.value ->> 0 AND i.key = j.value ->> 1",
        )
        .bind(serde_json::to_string(keys).expect("keys serialise"))
        .fetch_all(&mut *self.0)
        .await?;
        rows.into_iter()
            .map(|(user, key, request_hash, body, created)| {
                Ok((
                    user,
                    key,
                    IdempotencyRecord {
                        request_hash,
                        body,
                        created_at: DateTime::from_timestamp(created, 0)
                            .ok_or_else(|| corrupt("idempotency created_at", created))?,
                    },
                ))
            })
            .collect()
    }

    async fn put_idempotencies(
        &mut self,
        records: &[(UserId, String, IdempotencyRecord)],
    ) -> Result<(), StoreError> {
        self.insert_booked(&[], records).await
    }

    async fn otp_requests(
        &mut self,
        by: OtpRequester<'_>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let (sql, key) = match by {
            OtpRequester::Phone(p) => (
                "SELECT at FROM otp_requests WHERE phone = ? AND at > ? ORDER BY at DESC LIMIT ?",
                p.as_str(),
            ),
            OtpRequester::Ip(ip) => (
                "SELECT at FROM otp_requests WHERE ip = ? AND at > ? ORDER BY at DESC LIMIT ?",
                ip,
            ),
        };
        let times: Vec<i64> = sqlx::query_scalar(sql)
            .bind(key)
            .bind(since.timestamp())
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?;
        times
            .into_iter()
            .map(|t| DateTime::from_timestamp(t, 0).ok_or_else(|| corrupt("otp request at", t)))
            .collect()
    }

    async fn put_otp(
        &mut self,
        phone: &Phone,
        ip: &str,
        at: DateTime<Utc>,
        code: &StoredCode,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO otp_requests (phone, ip, at) VALUES (?, ?, ?)")
            .bind(phone.as_str())
            .bind(ip)
            .bind(at.timestamp())
            .execute(&mut *self.0)
            .await?;
        sqlx::query("DELETE FROM otp_requests WHERE at < ?")
            .bind(forget_before.timestamp())
            .execute(&mut *self.0)
            .await?;
        sqlx::query(
            "INSERT INTO otp_codes (phone, code_hash, expires_at, attempts, dev_code) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (phone) DO UPDATE SET code_hash = excluded.code_hash, \
             expires_at = excluded.expires_at, attempts = excluded.attempts, \
             dev_code = excluded.dev_code",
        )
        .bind(phone.as_str())
        .bind(&code.code_hash)
        .bind(code.expires_at.timestamp())
        .bind(code.attempts)
        .bind(code.dev_code.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn stored_code(&mut self, phone: &Phone) -> Result<Option<StoredCode>, StoreError> {
        let row: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT code_hash, expires_at, attempts, dev_code FROM otp_codes WHERE phone = ?",
        )
        .bind(phone.as_str())
        .fetch_optional(&mut *self.0)
        .await?;
        row.map(|(code_hash, expires, attempts, dev_code)| {
            Ok(StoredCode {
                code_hash,
                expires_at: DateTime::from_timestamp(expires, 0)
                    .ok_or_else(|| corrupt("otp expires_at", expires))?,
                attempts,
                dev_code,
            })
        })
        .transpose()
    }

    async fn apply_code(&mut self, phone: &Phone, effect: CodeEffect) -> Result<(), StoreError> {
        let sql = match effect {
            CodeEffect::Consume => "DELETE FROM otp_codes WHERE phone = ?",
            CodeEffect::CountWrongTry => {
                "UPDATE otp_codes SET attempts = attempts + 1 WHERE phone = ?"
            }
        };
        sqlx::query(sql)
            .bind(phone.as_str())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.commit().await?;
        Ok(())
    }
}
