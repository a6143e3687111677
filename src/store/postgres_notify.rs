//! The inbox and the outbox of deliveries on PostgreSQL, as on SQLite
//! (`sqlite_notify.rs`). Workers on several nodes claim due deliveries with
//! `FOR UPDATE SKIP LOCKED` and a lease, so none is taken twice at once and a
//! dead node's claims go to the others when their lease ends.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::postgres::{PgStore, corrupt};
use super::{
    ChannelName, DeliveryJob, DeliveryOutcome, NotificationRecord, NotifyStore, OutboxStats,
    StoreError,
};
use crate::domain::notify::{Notice, NotificationId};
use crate::domain::user::UserId;

const COLUMNS: &str = "n.id, n.user_id, n.type, n.title, n.body, n.url, n.data::text AS data, \
     n.expires_at, n.topic, n.created_at, n.read_at";

fn record(r: &PgRow) -> Result<NotificationRecord, StoreError> {
    let id: i64 = r.try_get("id")?;
    let kind: String = r.try_get("type")?;
    let data: String = r.try_get("data")?;
    Ok(NotificationRecord {
        id: NotificationId::from_i64(id).ok_or_else(|| corrupt("notification id", id))?,
        user: r.try_get("user_id")?,
        kind: kind.parse().map_err(|e| corrupt("type", e))?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        url: r.try_get("url")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("data", e))?,
        expires_at: r.try_get("expires_at")?,
        topic: r.try_get("topic")?,
        created_at: r.try_get("created_at")?,
        read_at: r.try_get("read_at")?,
    })
}

/// Write a notice into the inbox and queue its deliveries, inside the
/// transaction of its cause.
pub(super) async fn insert_notice(
    conn: &mut PgConnection,
    n: &Notice,
) -> Result<NotificationId, StoreError> {
    let id = NotificationId::random();
    sqlx::query(
        "INSERT INTO notifications (id, user_id, type, title, body, url, data, expires_at, topic, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)",
    )
    .bind(id.as_i64())
    .bind(n.user)
    .bind(n.kind.as_str())
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.url)
    .bind(n.data.to_string())
    .bind(n.expires_at)
    .bind(&n.topic)
    .bind(n.at)
    .execute(&mut *conn)
    .await?;
    if n.kind.sms_fallback() {
        sqlx::query(
            "INSERT INTO deliveries (notification_id, channel, state, due_at) VALUES ($1, 'sms', 'pending', $2)",
        )
        .bind(id.as_i64())
        .bind(n.at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

#[async_trait]
impl NotifyStore for PgStore {
    async fn inbox(
        &self,
        user: UserId,
        before: Option<NotificationId>,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = match before {
            Some(b) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM notifications n, notifications c WHERE c.id = $1 AND c.user_id = $2 \
                     AND n.user_id = c.user_id AND (n.created_at, n.id) < (c.created_at, c.id) \
                     ORDER BY n.created_at DESC, n.id DESC LIMIT $3"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(b.as_i64())
                    .bind(user)
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM notifications n WHERE n.user_id = $1 \
                     ORDER BY n.created_at DESC, n.id DESC LIMIT $2"
                );
                sqlx::query(AssertSqlSafe(sql))
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
        sqlx::query(
            "UPDATE notifications SET read_at = $1 WHERE id = $2 AND user_id = $3 AND read_at IS NULL",
        )
        .bind(super::micros(at))
        .bind(id.as_i64())
        .bind(user)
        .execute(self.pool())
        .await?;
        let sql =
            format!("SELECT {COLUMNS} FROM notifications n WHERE n.id = $1 AND n.user_id = $2");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .bind(user)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        record(&row)
    }

    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL",
        )
        .bind(super::micros(at))
        .bind(user)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
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
        let mut tx = self.write_tx().await?;
        let claimed: Vec<(i64, String, i32)> = sqlx::query_as(
            "UPDATE deliveries d SET claimed_until = $1 FROM (SELECT notification_id, channel \
             FROM deliveries WHERE state = 'pending' AND due_at <= $2 \
             AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3 \
             FOR UPDATE SKIP LOCKED) c WHERE d.notification_id = c.notification_id \
             AND d.channel = c.channel RETURNING d.notification_id, d.channel, d.attempts",
        )
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<i64> = claimed.iter().map(|c| c.0).collect();
        let sql = format!(
            "SELECT {COLUMNS}, u.phone AS phone, EXISTS (SELECT 1 FROM deliveries p WHERE \
             p.notification_id = n.id AND p.channel = 'push' AND p.state = 'sent') AS pushed \
             FROM notifications n JOIN users u ON u.id = n.user_id WHERE n.id = ANY($1)"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut by_id: HashMap<i64, &PgRow> = HashMap::new();
        for r in &rows {
            by_id.insert(r.try_get("id")?, r);
        }
        claimed
            .iter()
            .map(|(id, ch, attempts)| {
                let row = by_id
                    .get(id)
                    .ok_or_else(|| corrupt("delivery without its notification", id))?;
                let phone: String = row.try_get("phone")?;
                Ok(DeliveryJob {
                    notification: record(row)?,
                    channel: ChannelName::parse(ch)?,
                    attempts: *attempts as u32,
                    phone: phone.parse().map_err(|e| corrupt("phone", e))?,
                    pushed: row.try_get("pushed")?,
                })
            })
            .collect()
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        let (pending, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(due_at) FILTER (WHERE due_at <= $1) FROM deliveries WHERE state = 'pending'",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(OutboxStats {
            pending: pending as u64,
            oldest_due: oldest,
        })
    }

    async fn finish_delivery(
        &self,
        id: NotificationId,
        channel: ChannelName,
        outcome: &DeliveryOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = super::micros(at);
        let q = match outcome {
            DeliveryOutcome::Sent => sqlx::query(
                "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, done_at = $1, \
                 claimed_until = NULL WHERE notification_id = $2 AND channel = $3",
            )
            .bind(at),
            DeliveryOutcome::Later(t) => sqlx::query(
                "UPDATE deliveries SET due_at = $1, claimed_until = NULL \
                 WHERE notification_id = $2 AND channel = $3",
            )
            .bind(*t),
            DeliveryOutcome::Retry { at: t, .. } => sqlx::query(
                "UPDATE deliveries SET due_at = $1, attempts = attempts + 1, last_error = $4, \
                 claimed_until = NULL WHERE notification_id = $2 AND channel = $3",
            )
            .bind(*t),
            DeliveryOutcome::Failed(_) => sqlx::query(
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, done_at = $1, \
                 last_error = $4, claimed_until = NULL WHERE notification_id = $2 AND channel = $3",
            )
            .bind(at),
            DeliveryOutcome::Skipped(_) => sqlx::query(
                "UPDATE deliveries SET state = 'skipped', done_at = $1, last_error = $4, \
                 claimed_until = NULL WHERE notification_id = $2 AND channel = $3",
            )
            .bind(at),
        };
        let why = match outcome {
            DeliveryOutcome::Retry { why, .. }
            | DeliveryOutcome::Failed(why)
            | DeliveryOutcome::Skipped(why) => Some(why.clone()),
            _ => None,
        };
        let q = q.bind(id.as_i64()).bind(channel.as_str());
        let q = match outcome {
            DeliveryOutcome::Retry { .. }
            | DeliveryOutcome::Failed(_)
            | DeliveryOutcome::Skipped(_) => q.bind(why),
            _ => q,
        };
        q.execute(self.pool()).await?;
        Ok(())
    }
}
