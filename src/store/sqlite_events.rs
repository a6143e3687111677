//! Events and bookings on SQLite. Every booking decision is one write
//! transaction (`BEGIN IMMEDIATE`: SQLite's single writer), so counting seats
//! and taking one can never interleave with another booking; the `held <=
//! capacity` CHECK on `events` is the last line of defence.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::sqlite::{SqliteStore, corrupt, fmt_time, micros, parse_time};
use super::{BookRequest, StoreError};
use crate::domain::event::{
    BookOutcome, Booking, BookingId, BookingStatus, Event, EventDraft, EventId, Quota,
};
use crate::domain::hours::SHANGHAI;
use crate::domain::site::SiteId;
use crate::domain::user::UserId;

const EVENT_COLUMNS: &str = "id, kind, site_id, venue_name, lat, lon, title, description, starts_at, \
     ends_at, capacity, booking_opens_at, booking_closes_at, cancel_deadline, waitlist, status, quotas, \
     eligibility, offer_hours, held, version, updated_at";
const BOOKING_COLUMNS: &str = "id, event_id, user_id, status, quota, waitlist_seq, offer_expires_at, \
     created_at, updated_at";
/// Statuses that hold a seat, as SQL.
const HOLDS: &str = "('confirmed', 'offered', 'checked_in')";

fn time(r: &SqliteRow, col: &str) -> Result<DateTime<Utc>, StoreError> {
    let s: String = r.try_get(col)?;
    parse_time(&s).map_err(|e| corrupt(col, e))
}

fn event_from_row(r: &SqliteRow) -> Result<Event, StoreError> {
    let id: i64 = r.try_get("id")?;
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    let site: Option<i64> = r.try_get("site_id")?;
    let quotas: String = r.try_get("quotas")?;
    let eligibility: String = r.try_get("eligibility")?;
    let capacity: i64 = r.try_get("capacity")?;
    let held: i64 = r.try_get("held")?;
    let offer_hours: Option<i64> = r.try_get("offer_hours")?;
    let waitlist: i64 = r.try_get("waitlist")?;
    Ok(Event {
        id: EventId::from_i64(id).ok_or_else(|| corrupt("event id", id))?,
        draft: EventDraft {
            kind: kind.parse().map_err(|e| corrupt("kind", e))?,
            site_id: site.and_then(SiteId::from_i64),
            venue_name: r.try_get("venue_name")?,
            lat: r.try_get("lat")?,
            lon: r.try_get("lon")?,
            title: r.try_get("title")?,
            description: r.try_get("description")?,
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
        },
        held: held as u32,
        version: r.try_get("version")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// A booking row: the booking, its event and its owner.
pub struct BookingRow {
    pub booking: Booking,
    pub event: EventId,
    pub user: UserId,
    seq: Option<i64>,
}

fn booking_from_row(r: &SqliteRow) -> Result<BookingRow, StoreError> {
    let id: i64 = r.try_get("id")?;
    let event: i64 = r.try_get("event_id")?;
    let status: String = r.try_get("status")?;
    let offer: Option<String> = r.try_get("offer_expires_at")?;
    let event = EventId::from_i64(event).ok_or_else(|| corrupt("event id", event))?;
    Ok(BookingRow {
        booking: Booking {
            id: BookingId::from_i64(id)
                .ok_or_else(|| corrupt("booking id", id))?
                .to_string(),
            event_id: event.to_string(),
            status: status.parse().map_err(|e| corrupt("booking status", e))?,
            waitlist_position: None,
            quota: r.try_get("quota")?,
            offer_expires_at: offer
                .map(|t| parse_time(&t))
                .transpose()
                .map_err(|e| corrupt("offer", e))?,
            created_at: time(r, "created_at")?,
            updated_at: time(r, "updated_at")?,
            checkin_code: None,
        },
        event,
        user: r.try_get("user_id")?,
        seq: r.try_get("waitlist_seq")?,
    })
}

async fn log(
    tx: &mut Transaction<'static, Sqlite>,
    booking: i64,
    status: BookingStatus,
    at: DateTime<Utc>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO booking_log (booking_id, at, status, note) VALUES (?, ?, ?, ?)")
        .bind(booking)
        .bind(fmt_time(at))
        .bind(status.as_str())
        .bind(note)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Move a booking to `status`, logged with `note`.
async fn transition(
    tx: &mut Transaction<'static, Sqlite>,
    booking: i64,
    status: BookingStatus,
    at: DateTime<Utc>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE bookings SET status = ?, updated_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(fmt_time(at))
        .bind(booking)
        .execute(&mut **tx)
        .await?;
    log(tx, booking, status, at, note).await
}

/// Seats held in the event, in all and by the quota `key` (or outside every
/// quota when `None`).
async fn held_by(
    tx: &mut Transaction<'static, Sqlite>,
    event: i64,
    key: Option<&str>,
) -> Result<i64, StoreError> {
    let sql = format!(
        "SELECT count(*) FROM bookings WHERE event_id = ? AND status IN {HOLDS} AND quota IS ?"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(event)
        .bind(key)
        .fetch_one(&mut **tx)
        .await?)
}

/// Is a seat free for someone in quota `key`?
async fn seat_for(
    tx: &mut Transaction<'static, Sqlite>,
    event: &Event,
    key: Option<&str>,
) -> Result<bool, StoreError> {
    let d = &event.draft;
    if event.held >= d.capacity {
        return Ok(false);
    }
    if d.quotas.is_empty() {
        return Ok(true);
    }
    let eid = event.id.as_i64();
    let limit = match key {
        Some(k) => d
            .quotas
            .iter()
            .filter(|q| q.key() == k)
            .map(|q| i64::from(q.seats))
            .sum(),
        None => i64::from(d.capacity) - d.quotas.iter().map(|q| i64::from(q.seats)).sum::<i64>(),
    };
    Ok(held_by(tx, eid, key).await? < limit)
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

impl SqliteStore {
    pub(super) async fn insert_event(
        &self,
        d: EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let id = EventId::random();
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "INSERT INTO events ({EVENT_COLUMNS}, created_by) VALUES \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, ?)"
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
            .bind(fmt_time(at))
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        let event = load_event(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(event)
    }

    pub(super) async fn select_event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    pub(super) async fn select_published(
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

    /// One booking attempt, decided and recorded in one transaction.
    pub(super) async fn book_tx(
        &self,
        req: BookRequest<'_>,
    ) -> Result<(BookOutcome, bool), StoreError> {
        let BookRequest {
            user,
            event,
            key,
            request_hash,
            at,
        } = req;
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        if let Some(key) = key {
            let row = sqlx::query(
                "SELECT request_hash, body FROM idempotency WHERE user_id = ? AND key = ? AND created_at > ?",
            )
            .bind(user.id)
            .bind(key)
            .bind(at.timestamp() - 24 * 3600)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                let (hash, body): (String, String) =
                    (row.try_get("request_hash")?, row.try_get("body")?);
                if hash != request_hash {
                    return Err(StoreError::KeyReuse);
                }
                let outcome =
                    serde_json::from_str(&body).map_err(|e| corrupt("idempotent body", e))?;
                return Ok((outcome, true));
            }
        }
        let ev = load_event(&mut tx, event)
            .await?
            .ok_or(StoreError::NotFound)?;
        let outcome = decide(&mut tx, &ev, user, at).await?;
        if let Some(key) = key {
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency (user_id, key, request_hash, status, body, created_at) VALUES (?, ?, ?, 0, ?, ?)",
            )
            .bind(user.id)
            .bind(key)
            .bind(request_hash)
            .bind(serde_json::to_string(&outcome).expect("outcome serializes"))
            .bind(at.timestamp())
            .execute(&mut *tx)
            .await?;
            // Records past their 24 hours answer nothing: drop a few with each write.
            sqlx::query(
                "DELETE FROM idempotency WHERE rowid IN \
                 (SELECT rowid FROM idempotency WHERE created_at <= ? LIMIT 100)",
            )
            .bind(at.timestamp() - 24 * 3600)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((outcome, false))
    }

    pub(super) async fn select_booking(
        &self,
        id: BookingId,
    ) -> Result<Option<BookingRow>, StoreError> {
        let sql = format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => {
                let mut b = booking_from_row(&r)?;
                self.fill_position(&mut b).await?;
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }

    async fn fill_position(&self, b: &mut BookingRow) -> Result<(), StoreError> {
        if b.booking.status == BookingStatus::Waitlisted
            && let Some(seq) = b.seq
        {
            let ahead: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bookings WHERE event_id = ? AND status = 'waitlisted' AND waitlist_seq < ?",
            )
            .bind(b.event.as_i64())
            .bind(seq)
            .fetch_one(self.pool())
            .await?;
            b.booking.waitlist_position = Some(ahead as u32 + 1);
        }
        Ok(())
    }

    pub(super) async fn select_user_bookings(
        &self,
        user: UserId,
    ) -> Result<Vec<BookingRow>, StoreError> {
        let sql =
            format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE user_id = ? ORDER BY created_at");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut b = booking_from_row(r)?;
            self.fill_position(&mut b).await?;
            out.push(b);
        }
        Ok(out)
    }

    /// Cancel a booking; a seat it held goes to the first waitlisted person
    /// whose quota it fits, in the same transaction. Returns the cancelled
    /// booking and the promoted one, if any.
    pub(super) async fn cancel_tx(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<(BookingRow, Option<BookingId>), StoreError> {
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        let sql = format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id.as_i64())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let b = booking_from_row(&row)?;
        if b.booking.status == BookingStatus::Cancelled {
            return Ok((b, None));
        }
        let held = b.booking.status.holds_seat();
        transition(&mut tx, id.as_i64(), BookingStatus::Cancelled, at, None).await?;
        let mut promoted = None;
        if held {
            sqlx::query("UPDATE events SET held = held - 1 WHERE id = ?")
                .bind(b.event.as_i64())
                .execute(&mut *tx)
                .await?;
            let ev = load_event(&mut tx, b.event)
                .await?
                .ok_or(StoreError::NotFound)?;
            promoted = promote(&mut tx, &ev, at).await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_one(&mut *tx)
            .await?;
        let b = booking_from_row(&row)?;
        tx.commit().await?;
        Ok((b, promoted))
    }
}

impl SqliteStore {
    pub(super) async fn check_in_tx(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, bool), StoreError> {
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT status, checked_in_at FROM bookings WHERE id = ?")
            .bind(id.as_i64())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let status: String = row.try_get("status")?;
        let checked: Option<String> = row.try_get("checked_in_at")?;
        match (status.as_str(), checked) {
            ("checked_in", Some(t)) => Ok((
                parse_time(&t).map_err(|e| corrupt("checked_in_at", e))?,
                true,
            )),
            ("confirmed", _) => {
                sqlx::query("UPDATE bookings SET status = 'checked_in', checked_in_at = ?, updated_at = ? WHERE id = ?")
                    .bind(fmt_time(at))
                    .bind(fmt_time(at))
                    .bind(id.as_i64())
                    .execute(&mut *tx)
                    .await?;
                log(&mut tx, id.as_i64(), BookingStatus::CheckedIn, at, None).await?;
                tx.commit().await?;
                Ok((at, false))
            }
            (other, _) => Err(StoreError::WrongState(format!("the booking is {other}"))),
        }
    }

    pub(super) async fn no_shows_tx(
        &self,
        event: EventId,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let ends: Option<String> = sqlx::query_scalar("SELECT ends_at FROM events WHERE id = ?")
            .bind(event.as_i64())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(ends) = ends else {
            return Err(StoreError::NotFound);
        };
        if parse_time(&ends).map_err(|e| corrupt("ends_at", e))? > at {
            return Ok(0);
        }
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM bookings WHERE event_id = ? AND status = 'confirmed'",
        )
        .bind(event.as_i64())
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            transition(
                &mut tx,
                *id,
                BookingStatus::NoShow,
                at,
                Some("not checked in by the end"),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    pub(super) async fn select_event_bookings(
        &self,
        event: EventId,
    ) -> Result<Vec<(BookingRow, Option<DateTime<Utc>>)>, StoreError> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS}, checked_in_at FROM bookings WHERE event_id = ? ORDER BY created_at, waitlist_seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event.as_i64())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let checked: Option<String> = r.try_get("checked_in_at")?;
                Ok((
                    booking_from_row(r)?,
                    checked
                        .map(|t| parse_time(&t))
                        .transpose()
                        .map_err(|e| corrupt("checked_in_at", e))?,
                ))
            })
            .collect()
    }
}

/// Lapse the event's offers past their time, passing each seat on.
async fn lapse_offers(
    tx: &mut Transaction<'static, Sqlite>,
    event: EventId,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let lapsed: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE event_id = ? AND status = 'offered' AND offer_expires_at <= ? ORDER BY offer_expires_at",
    )
    .bind(event.as_i64())
    .bind(fmt_time(at))
    .fetch_all(&mut **tx)
    .await?;
    for id in &lapsed {
        transition(tx, *id, BookingStatus::Cancelled, at, Some("offer lapsed")).await?;
        sqlx::query("UPDATE events SET held = held - 1 WHERE id = ?")
            .bind(event.as_i64())
            .execute(&mut **tx)
            .await?;
        let ev = load_event(tx, event).await?.ok_or(StoreError::NotFound)?;
        promote(tx, &ev, at).await?;
    }
    Ok(lapsed.len() as u64)
}

impl SqliteStore {
    pub(super) async fn expire_offers_tx(
        &self,
        event: EventId,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        let n = lapse_offers(&mut tx, event, at).await?;
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn accept_tx(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<BookingRow, StoreError> {
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        let sql = format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id.as_i64())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let b = booking_from_row(&row)?;
        lapse_offers(&mut tx, b.event, at).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id.as_i64())
            .fetch_one(&mut *tx)
            .await?;
        let b = booking_from_row(&row)?;
        if b.booking.status != BookingStatus::Offered {
            return Err(StoreError::WrongState(format!(
                "the booking is {}, not offered",
                b.booking.status.as_str()
            )));
        }
        sqlx::query("UPDATE bookings SET status = 'confirmed', offer_expires_at = NULL, updated_at = ? WHERE id = ?")
            .bind(fmt_time(at))
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await?;
        log(
            &mut tx,
            id.as_i64(),
            BookingStatus::Confirmed,
            at,
            Some("offer accepted"),
        )
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_one(&mut *tx)
            .await?;
        let b = booking_from_row(&row)?;
        tx.commit().await?;
        Ok(b)
    }

    pub(super) async fn event_status_tx(
        &self,
        id: EventId,
        status: crate::domain::event::EventStatus,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        load_event(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        sqlx::query(
            "UPDATE events SET status = ?, version = version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(fmt_time(at))
        .bind(id.as_i64())
        .execute(&mut *tx)
        .await?;
        if status == crate::domain::event::EventStatus::Cancelled {
            let active: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM bookings WHERE event_id = ? AND status IN ('confirmed', 'waitlisted', 'offered')",
            )
            .bind(id.as_i64())
            .fetch_all(&mut *tx)
            .await?;
            for b in &active {
                transition(
                    &mut tx,
                    *b,
                    BookingStatus::Cancelled,
                    at,
                    Some("event cancelled"),
                )
                .await?;
            }
            sqlx::query("UPDATE events SET held = 0 WHERE id = ?")
                .bind(id.as_i64())
                .execute(&mut *tx)
                .await?;
        }
        let ev = load_event(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(ev)
    }
}

impl SqliteStore {
    pub(super) async fn update_event_tx(
        &self,
        id: EventId,
        d: EventDraft,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let at = micros(at);
        let mut tx = self.write_tx().await?;
        let cur = load_event(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if d.capacity < cur.held {
            return Err(StoreError::WrongState(format!(
                "capacity {} is below the {} seats already held",
                d.capacity, cur.held
            )));
        }
        sqlx::query(
            "UPDATE events SET title = ?, description = ?, starts_at = ?, ends_at = ?, capacity = ?, \
             booking_opens_at = ?, booking_closes_at = ?, cancel_deadline = ?, waitlist = ?, \
             version = version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(d.title)
        .bind(d.description)
        .bind(fmt_time(d.starts_at))
        .bind(fmt_time(d.ends_at))
        .bind(i64::from(d.capacity))
        .bind(fmt_time(d.booking_opens_at))
        .bind(fmt_time(d.booking_closes_at))
        .bind(fmt_time(d.cancel_deadline))
        .bind(i64::from(d.waitlist))
        .bind(fmt_time(at))
        .bind(id.as_i64())
        .execute(&mut *tx)
        .await?;
        // More seats: the waitlist moves up.
        loop {
            let ev = load_event(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
            if ev.held >= ev.draft.capacity || promote(&mut tx, &ev, at).await?.is_none() {
                break;
            }
        }
        let ev = load_event(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(ev)
    }
}

/// Give the free seat to the first waitlisted person it fits.
async fn promote(
    tx: &mut Transaction<'static, Sqlite>,
    ev: &Event,
    at: DateTime<Utc>,
) -> Result<Option<BookingId>, StoreError> {
    let waiting: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT id, quota FROM bookings WHERE event_id = ? AND status = 'waitlisted' ORDER BY waitlist_seq",
    )
    .bind(ev.id.as_i64())
    .fetch_all(&mut **tx)
    .await?;
    for (bid, quota) in waiting {
        if !seat_for(tx, ev, quota.as_deref()).await? {
            continue;
        }
        let (status, offer) = match ev.draft.offer_hours {
            Some(h) => (
                BookingStatus::Offered,
                Some(at + chrono::Duration::hours(i64::from(h))),
            ),
            None => (BookingStatus::Confirmed, None),
        };
        sqlx::query(
            "UPDATE bookings SET status = ?, offer_expires_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(offer.map(fmt_time))
        .bind(fmt_time(at))
        .bind(bid)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE events SET held = held + 1 WHERE id = ?")
            .bind(ev.id.as_i64())
            .execute(&mut **tx)
            .await?;
        log(tx, bid, status, at, Some("promoted from the waitlist")).await?;
        return Ok(BookingId::from_i64(bid));
    }
    Ok(None)
}

/// The booking decision, inside the transaction.
async fn decide(
    tx: &mut Transaction<'static, Sqlite>,
    ev: &Event,
    user: &crate::domain::user::User,
    at: DateTime<Utc>,
) -> Result<BookOutcome, StoreError> {
    let d = &ev.draft;
    if d.status != crate::domain::event::EventStatus::Published {
        return Ok(BookOutcome::NotOpen {
            detail: format!("the event is {}", d.status.as_str()),
        });
    }
    if at < d.booking_opens_at {
        return Ok(BookOutcome::OutsideWindow {
            detail: format!("booking opens at {}", d.booking_opens_at.to_rfc3339()),
        });
    }
    if at >= d.booking_closes_at {
        return Ok(BookOutcome::OutsideWindow {
            detail: format!("booking closed at {}", d.booking_closes_at.to_rfc3339()),
        });
    }
    let active: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE event_id = ? AND user_id = ? AND status IN ('confirmed', 'waitlisted', 'offered', 'checked_in')",
    )
    .bind(ev.id.as_i64())
    .bind(user.id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(b) = active {
        return Ok(BookOutcome::AlreadyBooked {
            booking_id: BookingId::from_i64(b)
                .map(|b| b.to_string())
                .unwrap_or_default(),
        });
    }
    // Trips of the same kind this person holds in the event's calendar year (Shanghai).
    let year = d.starts_at.with_timezone(&SHANGHAI).year();
    let (y0, y1) = (
        SHANGHAI
            .with_ymd_and_hms(year, 1, 1, 0, 0, 0)
            .single()
            .expect("fixed offset"),
        SHANGHAI
            .with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0)
            .single()
            .expect("fixed offset"),
    );
    let sql = format!(
        "SELECT count(*) FROM bookings b JOIN events e ON e.id = b.event_id WHERE b.user_id = ? \
         AND b.status IN {HOLDS} AND e.kind = ? AND e.starts_at >= ? AND e.starts_at < ?"
    );
    let trips: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(user.id)
        .bind(d.kind.as_str())
        .bind(fmt_time(y0.with_timezone(&Utc)))
        .bind(fmt_time(y1.with_timezone(&Utc)))
        .fetch_one(&mut **tx)
        .await?;
    if let Err(r) = d
        .eligibility
        .check(&user.profile, d.starts_at, trips as u32)
    {
        return Ok(BookOutcome::NotEligible {
            rule: r.rule.to_owned(),
            detail: r.detail,
        });
    }
    let key = Quota::key_for(&d.quotas, &user.profile);
    let id = BookingId::random();
    let (status, seq) = if seat_for(tx, ev, key.as_deref()).await? {
        (BookingStatus::Confirmed, None)
    } else if d.waitlist {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT max(waitlist_seq) FROM bookings WHERE event_id = ?")
                .bind(ev.id.as_i64())
                .fetch_one(&mut **tx)
                .await?;
        (BookingStatus::Waitlisted, Some(max.unwrap_or(0) + 1))
    } else {
        return Ok(BookOutcome::Full);
    };
    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, quota, waitlist_seq, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.as_i64())
    .bind(ev.id.as_i64())
    .bind(user.id)
    .bind(status.as_str())
    .bind(key.clone())
    .bind(seq)
    .bind(fmt_time(at))
    .bind(fmt_time(at))
    .execute(&mut **tx)
    .await?;
    if status.holds_seat() {
        sqlx::query("UPDATE events SET held = held + 1 WHERE id = ?")
            .bind(ev.id.as_i64())
            .execute(&mut **tx)
            .await?;
    }
    log(tx, id.as_i64(), status, at, None).await?;
    let position = match seq {
        Some(seq) => {
            let ahead: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bookings WHERE event_id = ? AND status = 'waitlisted' AND waitlist_seq < ?",
            )
            .bind(ev.id.as_i64())
            .bind(seq)
            .fetch_one(&mut **tx)
            .await?;
            Some(ahead as u32 + 1)
        }
        None => None,
    };
    Ok(BookOutcome::Booked {
        booking: Booking {
            id: id.to_string(),
            event_id: ev.id.to_string(),
            status,
            waitlist_position: position,
            quota: key,
            offer_expires_at: None,
            created_at: at,
            updated_at: at,
            checkin_code: None,
        },
    })
}
