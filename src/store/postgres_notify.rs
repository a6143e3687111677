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
    ChannelName, DeliveryJob, DeliveryKey, DeliveryOutcome, NotificationRecord, NotifyStore,
    OutboxStats, PushSubscription, StoreError,
};
use crate::domain::notify::{Notice, NotificationId};
use crate::domain::push::{NewSubscription, NotificationSettings, SubscriptionId};
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
    // A push to each of the person's browsers.
    sqlx::query(
        "INSERT INTO deliveries (notification_id, channel, target, state, due_at) \
         SELECT $1, 'push', id, 'pending', $2 FROM push_subscriptions WHERE user_id = $3",
    )
    .bind(id.as_i64())
    .bind(n.at)
    .bind(n.user)
    .execute(&mut *conn)
    .await?;
    // A subscribe message, when the person signed in with WeChat (the
    // channel decides whether a template and a consent let it go).
    sqlx::query(
        "INSERT INTO deliveries (notification_id, channel, target, state, due_at) \
         SELECT $1, 'wechat', 0, 'pending', $2 FROM wechat_accounts WHERE user_id = $3",
    )
    .bind(id.as_i64())
    .bind(n.at)
    .bind(n.user)
    .execute(&mut *conn)
    .await?;
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
        let claimed: Vec<(i64, String, i64, i32)> = sqlx::query_as(
            "UPDATE deliveries d SET claimed_until = $1 FROM (SELECT notification_id, channel, target \
             FROM deliveries WHERE state = 'pending' AND due_at <= $2 \
             AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3 \
             FOR UPDATE SKIP LOCKED) c WHERE d.notification_id = c.notification_id \
             AND d.channel = c.channel AND d.target = c.target \
             RETURNING d.notification_id, d.channel, d.target, d.attempts",
        )
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claimed.iter().map(|c| c.0).collect();
        let channels: Vec<String> = claimed.iter().map(|c| c.1.clone()).collect();
        let targets: Vec<i64> = claimed.iter().map(|c| c.2).collect();
        let sql = format!(
            "SELECT {COLUMNS}, k.channel, k.target, u.phone AS phone, EXISTS (SELECT 1 FROM deliveries p WHERE \
             p.notification_id = n.id AND p.channel = 'push' AND p.state = 'sent') AS pushed, \
             (SELECT w.state FROM deliveries w WHERE w.notification_id = n.id AND w.channel = 'wechat') AS wechat_state, \
             (SELECT CAST(w.attempts AS BIGINT) FROM deliveries w WHERE w.notification_id = n.id AND w.channel = 'wechat') AS wechat_attempts, \
             (SELECT wa.openid FROM wechat_accounts wa WHERE wa.user_id = n.user_id) AS openid, \
             s.muted_types::text AS muted_types, s.quiet_from, s.quiet_to, \
             ps.id AS sub_id, ps.endpoint, ps.p256dh, ps.auth, ps.types::text AS sub_types, \
             ps.created_at AS sub_created \
             FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS k (id, channel, target) \
             JOIN notifications n ON n.id = k.id JOIN users u ON u.id = n.user_id \
             LEFT JOIN notification_settings s ON s.user_id = n.user_id \
             LEFT JOIN push_subscriptions ps ON k.channel = 'push' AND ps.id = k.target"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&ids)
            .bind(&channels)
            .bind(&targets)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut by_key: HashMap<(i64, String, i64), &PgRow> = HashMap::new();
        for r in &rows {
            by_key.insert(
                (
                    r.try_get("id")?,
                    r.try_get("channel")?,
                    r.try_get("target")?,
                ),
                r,
            );
        }
        claimed
            .into_iter()
            .map(|(id, ch, target, attempts)| {
                let row = by_key
                    .get(&(id, ch.clone(), target))
                    .ok_or_else(|| corrupt("delivery without its notification", id))?;
                job(row, &ch, target, attempts)
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

    async fn finish_deliveries(
        &self,
        done: &[(DeliveryKey, DeliveryOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let at = super::micros(at);
        let mut tx = self.write_tx().await?;
        for (key, outcome) in done {
            let u = outcome.row_update();
            sqlx::query(
                "UPDATE deliveries SET state = $1, due_at = coalesce($2, due_at), \
                 attempts = attempts + $3, last_error = coalesce($4, last_error), \
                 done_at = CASE WHEN $1 = 'pending' THEN NULL ELSE $5 END, claimed_until = NULL, \
                 provider_ref = coalesce($9, provider_ref) \
                 WHERE notification_id = $6 AND channel = $7 AND target = $8",
            )
            .bind(u.state)
            .bind(u.due_at)
            .bind(i32::from(u.counts_a_try))
            .bind(u.error)
            .bind(at)
            .bind(key.notification.as_i64())
            .bind(key.channel.as_str())
            .bind(key.target)
            .bind(u.reference)
            .execute(&mut *tx)
            .await?;
            if u.removes_subscription {
                sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                    .bind(key.target)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_subscription(
        &self,
        user: UserId,
        sub: &NewSubscription,
        at: DateTime<Utc>,
    ) -> Result<(PushSubscription, bool), StoreError> {
        let types = sub.types.as_deref().map(super::types_to_json);
        // One statement: a concurrent subscribe of the same endpoint updates
        // the row the other inserted. `xmax = 0` marks a fresh insert.
        let row = sqlx::query(
            "INSERT INTO push_subscriptions AS ps (id, user_id, endpoint, p256dh, auth, types, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (endpoint) DO UPDATE SET \
             user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth, types = excluded.types \
             RETURNING ps.id AS sub_id, ps.user_id, ps.endpoint, ps.p256dh, ps.auth, ps.types::text AS sub_types, \
             ps.created_at AS sub_created, (xmax = 0) AS created",
        )
        .bind(SubscriptionId::random().as_i64())
        .bind(user)
        .bind(&sub.endpoint)
        .bind(&sub.p256dh)
        .bind(&sub.auth)
        .bind(types)
        .bind(super::micros(at))
        .fetch_one(self.pool())
        .await?;
        Ok((subscription(&row)?, row.try_get("created")?))
    }

    async fn subscriptions(&self, user: UserId) -> Result<Vec<PushSubscription>, StoreError> {
        sqlx::query(
            "SELECT id AS sub_id, user_id, endpoint, p256dh, auth, types::text AS sub_types, \
             created_at AS sub_created FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(subscription)
        .collect()
    }

    async fn delete_subscription(
        &self,
        user: UserId,
        id: SubscriptionId,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
            .bind(id.as_i64())
            .bind(user)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn notification_settings(
        &self,
        user: UserId,
    ) -> Result<NotificationSettings, StoreError> {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT muted_types::text, quiet_from, quiet_to FROM notification_settings WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some((m, f, t)) => super::settings_from_columns(Some(&m), f.as_deref(), t.as_deref()),
            None => Ok(NotificationSettings::default()),
        }
    }

    async fn put_notification_settings(
        &self,
        user: UserId,
        settings: &NotificationSettings,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (from, to) = super::quiet_columns(settings);
        sqlx::query(
            "INSERT INTO notification_settings (user_id, muted_types, quiet_from, quiet_to, updated_at) \
             VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
             muted_types = excluded.muted_types, quiet_from = excluded.quiet_from, \
             quiet_to = excluded.quiet_to, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(super::types_to_json(&settings.muted_types))
        .bind(from)
        .bind(to)
        .bind(super::micros(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A subscription from a row with `sub_id`, `user_id`, `endpoint`, `p256dh`,
/// `auth`, `sub_types`, `sub_created`.
fn subscription(r: &PgRow) -> Result<PushSubscription, StoreError> {
    let id: i64 = r.try_get("sub_id")?;
    let types: Option<String> = r.try_get("sub_types")?;
    Ok(PushSubscription {
        id: SubscriptionId::from_i64(id).ok_or_else(|| corrupt("subscription id", id))?,
        user: r.try_get("user_id")?,
        endpoint: r.try_get("endpoint")?,
        p256dh: r.try_get("p256dh")?,
        auth: r.try_get("auth")?,
        types: types.as_deref().map(super::types_from_json).transpose()?,
        created_at: r.try_get("sub_created")?,
    })
}

/// A claimed delivery from its row (see `claim_deliveries`).
fn job(r: &PgRow, channel: &str, target: i64, attempts: i32) -> Result<DeliveryJob, StoreError> {
    let phone: String = r.try_get("phone")?;
    let muted: Option<String> = r.try_get("muted_types")?;
    let from: Option<String> = r.try_get("quiet_from")?;
    let to: Option<String> = r.try_get("quiet_to")?;
    let sub: Option<i64> = r.try_get("sub_id")?;
    Ok(DeliveryJob {
        notification: record(r)?,
        channel: ChannelName::parse(channel)?,
        target,
        subscription: sub.map(|_| subscription(r)).transpose()?,
        settings: super::settings_from_columns(muted.as_deref(), from.as_deref(), to.as_deref())?,
        attempts: attempts as u32,
        phone: phone.parse().map_err(|e| corrupt("phone", e))?,
        pushed: r.try_get("pushed")?,
        wechat: crate::domain::notify::WechatState::of(
            r.try_get::<Option<String>, _>("wechat_state")?.as_deref(),
            r.try_get::<Option<i64>, _>("wechat_attempts")?.unwrap_or(0),
        ),
        openid: r.try_get("openid")?,
    })
}
