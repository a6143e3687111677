//! The inbox and the outbox of deliveries on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::sqlite::{SqliteStore, corrupt, fmt_time, parse_time};
use super::sqlite_events::opt_time;
use super::{
    ChannelName, DeliveryJob, DeliveryOutcome, NotificationRecord, NotifyStore, OutboxStats,
    StoreError,
};
use crate::domain::notify::{Notice, NotificationId};
use crate::domain::user::UserId;

const COLUMNS: &str = "n.id, n.user_id, n.type, n.title, n.body, n.url, n.data, n.expires_at, n.topic, n.created_at, n.read_at";

fn record(r: &SqliteRow) -> Result<NotificationRecord, StoreError> {
    let id: i64 = r.try_get("id")?;
    let kind: String = r.try_get("type")?;
    let data: String = r.try_get("data")?;
    let created: String = r.try_get("created_at")?;
    Ok(NotificationRecord {
        id: NotificationId::from_i64(id).ok_or_else(|| corrupt("notification id", id))?,
        user: r.try_get("user_id")?,
        kind: kind.parse().map_err(|e| corrupt("type", e))?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        url: r.try_get("url")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("data", e))?,
        expires_at: opt_time(r, "expires_at")?,
        topic: r.try_get("topic")?,
        created_at: parse_time(&created).map_err(|e| corrupt("created_at", e))?,
        read_at: opt_time(r, "read_at")?,
    })
}

/// Write a notice into the inbox and queue its deliveries, inside the
/// transaction of its cause.
pub(super) async fn insert_notice(
    tx: &mut Transaction<'static, Sqlite>,
    n: &Notice,
) -> Result<NotificationId, StoreError> {
    let id = NotificationId::random();
    sqlx::query(
        "INSERT INTO notifications (id, user_id, type, title, body, url, data, expires_at, topic, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.as_i64())
    .bind(n.user)
    .bind(n.kind.as_str())
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.url)
    .bind(n.data.to_string())
    .bind(n.expires_at.map(fmt_time))
    .bind(&n.topic)
    .bind(fmt_time(n.at))
    .execute(&mut **tx)
    .await?;
    if n.kind.sms_fallback() {
        sqlx::query(
            "INSERT INTO deliveries (notification_id, channel, state, due_at) VALUES (?, 'sms', 'pending', ?)",
        )
        .bind(id.as_i64())
        .bind(fmt_time(n.at))
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn inbox(
        &self,
        user: UserId,
        before: Option<NotificationId>,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = match before {
            Some(b) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM notifications n, notifications c WHERE c.id = ? AND c.user_id = ? \
                     AND n.user_id = c.user_id AND (n.created_at < c.created_at OR (n.created_at = c.created_at AND n.id < c.id)) \
                     ORDER BY n.created_at DESC, n.id DESC LIMIT ?"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(b.as_i64())
                    .bind(user)
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM notifications n WHERE n.user_id = ? \
                     ORDER BY n.created_at DESC, n.id DESC LIMIT ?"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(record).collect()
    }

    async fn mark_read(
        &self,
        user: UserId,
        id: NotificationId,
        at: DateTime<Utc>,
    ) -> Result<NotificationRecord, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE notifications SET read_at = ? WHERE id = ? AND user_id = ? AND read_at IS NULL",
        )
        .bind(fmt_time(super::micros(at)))
        .bind(id.as_i64())
        .bind(user)
        .execute(&mut *tx)
        .await?;
        let sql = format!("SELECT {COLUMNS} FROM notifications n WHERE n.id = ? AND n.user_id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_i64())
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let r = record(&row)?;
        tx.commit().await?;
        Ok(r)
    }

    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
        )
        .bind(fmt_time(super::micros(at)))
        .bind(user)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
        )
        .bind(user)
        .fetch_one(self.pool())
        .await?;
        Ok(n as u64)
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        // Most passes find nothing due: look before taking the database's write lock.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deliveries WHERE state = 'pending' AND due_at <= ? \
             AND (claimed_until IS NULL OR claimed_until <= ?) LIMIT 1",
        )
        .bind(fmt_time(now))
        .bind(fmt_time(now))
        .fetch_optional(self.pool())
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let claimed: Vec<(i64, String, i64)> = sqlx::query_as(
            "UPDATE deliveries SET claimed_until = ? WHERE rowid IN (SELECT rowid FROM deliveries \
             WHERE state = 'pending' AND due_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?) \
             ORDER BY due_at LIMIT ?) RETURNING notification_id, channel, attempts",
        )
        .bind(fmt_time(lease_until))
        .bind(fmt_time(now))
        .bind(fmt_time(now))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs = Vec::with_capacity(claimed.len());
        for (id, ch, attempts) in claimed {
            let sql = format!(
                "SELECT {COLUMNS}, u.phone AS phone, EXISTS (SELECT 1 FROM deliveries p WHERE \
                 p.notification_id = n.id AND p.channel = 'push' AND p.state = 'sent') AS pushed \
                 FROM notifications n JOIN users u ON u.id = n.user_id WHERE n.id = ?"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let phone: String = row.try_get("phone")?;
            let pushed: bool = row.try_get("pushed")?;
            jobs.push(DeliveryJob {
                notification: record(&row)?,
                channel: ChannelName::parse(&ch)?,
                attempts: attempts as u32,
                phone: phone.parse().map_err(|e| corrupt("phone", e))?,
                pushed,
            });
        }
        tx.commit().await?;
        Ok(jobs)
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        let (pending, oldest): (i64, Option<String>) = sqlx::query_as(
            "SELECT count(*), min(CASE WHEN due_at <= ? THEN due_at END) FROM deliveries WHERE state = 'pending'",
        )
        .bind(fmt_time(now))
        .fetch_one(self.pool())
        .await?;
        Ok(OutboxStats {
            pending: pending as u64,
            oldest_due: oldest
                .map(|t| parse_time(&t))
                .transpose()
                .map_err(|e| corrupt("due_at", e))?,
        })
    }

    async fn finish_delivery(
        &self,
        id: NotificationId,
        channel: ChannelName,
        outcome: &DeliveryOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = fmt_time(super::micros(at));
        let q = match outcome {
            DeliveryOutcome::Sent => sqlx::query(
                "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, done_at = ?, \
                 claimed_until = NULL WHERE notification_id = ? AND channel = ?",
            )
            .bind(at),
            DeliveryOutcome::Later(t) => sqlx::query(
                "UPDATE deliveries SET due_at = ?, claimed_until = NULL WHERE notification_id = ? AND channel = ?",
            )
            .bind(fmt_time(*t)),
            DeliveryOutcome::Retry { at: t, why } => sqlx::query(
                "UPDATE deliveries SET due_at = ?, attempts = attempts + 1, last_error = ?, \
                 claimed_until = NULL WHERE notification_id = ? AND channel = ?",
            )
            .bind(fmt_time(*t))
            .bind(why.clone()),
            DeliveryOutcome::Failed(why) => sqlx::query(
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?, \
                 done_at = ?, claimed_until = NULL WHERE notification_id = ? AND channel = ?",
            )
            .bind(why.clone())
            .bind(at),
            DeliveryOutcome::Skipped(why) => sqlx::query(
                "UPDATE deliveries SET state = 'skipped', last_error = ?, done_at = ?, \
                 claimed_until = NULL WHERE notification_id = ? AND channel = ?",
            )
            .bind(why.clone())
            .bind(at),
        };
        q.bind(id.as_i64())
            .bind(channel.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
