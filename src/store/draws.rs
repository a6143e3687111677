//! What yizhan keeps for draws (issue 26): applications, and the draw's own
//! columns on `events` (`draw_at`, `drawn_at`, `draw`, `draw_secret`). The
//! same statements on both backends (application times are Unix
//! milliseconds), stamped out once for each by [`draw_store!`] (reads) and
//! [`draw_tx!`] (inside a write transaction).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::application::{ApplicationId, ApplicationRecord};
use crate::domain::draw::PriorityGroup;
use crate::domain::event::{BookingId, DrawPlan, DrawSeal, EventDraft, EventId};
use crate::domain::user::{User, UserId};

/// Reads outside a write transaction.
#[async_trait]
pub trait DrawStore: Send + Sync + 'static {
    async fn application(&self, id: ApplicationId)
    -> Result<Option<ApplicationRecord>, StoreError>;
    /// A person's applications, newest first (at most 500).
    async fn user_applications(&self, user: UserId) -> Result<Vec<ApplicationRecord>, StoreError>;
    /// The applications waiting for `event`'s draw, with their people.
    async fn applicants(
        &self,
        event: EventId,
    ) -> Result<Vec<(ApplicationRecord, User)>, StoreError>;
    /// The entrants of `event`'s draw, by rank.
    async fn entrants(&self, event: EventId) -> Result<Vec<ApplicationRecord>, StoreError>;
    /// `hex(S)` of a drawn event; `None` before its draw.
    async fn revealed_secret(&self, event: EventId) -> Result<Option<String>, StoreError>;
    /// Published draw events whose `draw_at` has come and that are not drawn.
    async fn draws_due(&self, now: DateTime<Utc>) -> Result<Vec<EventId>, StoreError>;
}

/// Reads and writes inside a write transaction (a supertrait of `WriteTx`).
#[async_trait]
pub trait DrawTx: Send {
    async fn application_in(
        &mut self,
        id: ApplicationId,
    ) -> Result<Option<ApplicationRecord>, StoreError>;
    /// The person's application to `event` that is not withdrawn.
    async fn application_of(
        &mut self,
        event: EventId,
        user: UserId,
    ) -> Result<Option<ApplicationRecord>, StoreError>;
    /// The applications waiting for the draw, with their people.
    async fn applicants_in(
        &mut self,
        event: EventId,
    ) -> Result<Vec<(ApplicationRecord, User)>, StoreError>;
    /// The applications waiting for the draw.
    async fn waiting_applications(
        &mut self,
        event: EventId,
    ) -> Result<Vec<ApplicationRecord>, StoreError>;
    /// `hex(S)`.
    async fn draw_secret(&mut self, event: EventId) -> Result<Option<String>, StoreError>;
    /// Insert an application, or write its new state.
    async fn put_application(&mut self, a: &ApplicationRecord) -> Result<(), StoreError>;
}

/// The `draw` column: what a draw event keeps besides its two times.
#[derive(Debug, Serialize, Deserialize)]
struct DrawColumn {
    priority_groups: Vec<PriorityGroup>,
    #[serde(default)]
    public_value: String,
    seed_commitment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entrants_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
}

/// The `draw` column's JSON for an event (`None`: first come).
pub(crate) fn draw_json(d: &EventDraft, seal: Option<&DrawSeal>) -> Option<String> {
    let plan = d.draw.as_ref()?;
    let seal = seal.cloned().unwrap_or_default();
    Some(
        serde_json::to_string(&DrawColumn {
            priority_groups: plan.priority_groups.clone(),
            public_value: plan.public_value.clone(),
            seed_commitment: seal.seed_commitment,
            entrants_hash: seal.entrants_hash,
            seed: seal.seed,
        })
        .expect("a draw serialises"),
    )
}

/// A draw event's plan and seal (both `None` for first come).
pub(crate) type DrawParts = (Option<Box<DrawPlan>>, Option<Box<DrawSeal>>);

/// A draw event's plan and seal from its columns.
pub(crate) fn draw_from(
    draw_at: Option<DateTime<Utc>>,
    drawn_at: Option<DateTime<Utc>>,
    json: Option<String>,
) -> Result<DrawParts, StoreError> {
    let (Some(draw_at), Some(json)) = (draw_at, json) else {
        return Ok((None, None));
    };
    let c: DrawColumn = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("an event's draw: {e}")))?;
    Ok((
        Some(Box::new(DrawPlan {
            draw_at,
            priority_groups: c.priority_groups,
            public_value: c.public_value,
        })),
        Some(Box::new(DrawSeal {
            seed_commitment: c.seed_commitment,
            drawn_at,
            entrants_hash: c.entrants_hash,
            seed: c.seed,
        })),
    ))
}

/// A new draw event's secret `S` (hex) and its seal (the commitment).
pub(crate) fn new_secret(d: &EventDraft) -> (Option<String>, Option<DrawSeal>) {
    if d.draw.is_none() {
        return (None, None);
    }
    let s: [u8; 32] = rand::random();
    (
        Some(crate::domain::draw::hex(&s)),
        Some(DrawSeal {
            seed_commitment: crate::domain::draw::commitment(&s),
            ..DrawSeal::default()
        }),
    )
}

/// An `applications` row as the statements select it.
pub(crate) type ApplicationRow = (
    i64,
    i64,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

pub(crate) const APPLICATION_COLUMNS: &str = "id, event_id, user_id, state, priority_group, \
     draw_rank, booking_id, refusal, created_ms, updated_ms";

pub(crate) fn application_from(r: ApplicationRow) -> Result<ApplicationRecord, StoreError> {
    let (id, event, user, state, group, rank, booking, refusal, created, updated) = r;
    let corrupt = |what: &str| StoreError::Corrupt(format!("application {id}: {what}"));
    Ok(ApplicationRecord {
        id: ApplicationId::from_i64(id).ok_or_else(|| corrupt("id"))?,
        event: EventId::from_i64(event).ok_or_else(|| corrupt("event"))?,
        user,
        state: state.parse().map_err(|_| corrupt("state"))?,
        group,
        rank: rank.map(|r| r as u32),
        booking: booking
            .map(|b| BookingId::from_i64(b).ok_or_else(|| corrupt("booking")))
            .transpose()?,
        refusal,
        created_at: super::wechat::from_millis(created)?,
        updated_at: super::wechat::from_millis(updated)?,
    })
}

pub(crate) fn applications_from(
    rows: Vec<ApplicationRow>,
) -> Result<Vec<ApplicationRecord>, StoreError> {
    rows.into_iter().map(application_from).collect()
}

/// Pair applications with their people, read by id.
pub(crate) fn with_users(
    apps: Vec<ApplicationRecord>,
    users: Vec<User>,
) -> Result<Vec<(ApplicationRecord, User)>, StoreError> {
    let by_id: std::collections::HashMap<UserId, User> =
        users.into_iter().map(|u| (u.id, u)).collect();
    apps.into_iter()
        .map(|a| {
            let u = by_id.get(&a.user).cloned().ok_or_else(|| {
                StoreError::Corrupt(format!("application {} names no user", a.id))
            })?;
            Ok((a, u))
        })
        .collect()
}

/// `impl DrawStore` for a backend whose `pool()` runs these statements and
/// whose write transaction `$tx` (a newtype of an sqlx transaction) has
/// [`draw_tx!`]'s reads; `$time` turns a time into the `events` time
/// columns' type.
macro_rules! draw_store {
    ($store:ty, $tx:path, $time:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::draws::DrawStore for $store {
            async fn application(
                &self,
                id: $crate::domain::application::ApplicationId,
            ) -> Result<
                Option<$crate::domain::application::ApplicationRecord>,
                $crate::store::StoreError,
            > {
                // The same statement as inside a write, in a read-only transaction.
                let mut tx = $tx(self.pool().begin().await?);
                $crate::store::draws::DrawTx::application_in(&mut tx, id).await
            }

            async fn user_applications(
                &self,
                user: $crate::domain::user::UserId,
            ) -> Result<
                Vec<$crate::domain::application::ApplicationRecord>,
                $crate::store::StoreError,
            > {
                let sql = format!(
                    "SELECT {} FROM applications WHERE user_id = $1 \
                     ORDER BY created_ms DESC, id LIMIT 500",
                    $crate::store::draws::APPLICATION_COLUMNS
                );
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .fetch_all(self.pool())
                    .await?;
                $crate::store::draws::applications_from(rows)
            }

            async fn applicants(
                &self,
                event: $crate::domain::event::EventId,
            ) -> Result<
                Vec<(
                    $crate::domain::application::ApplicationRecord,
                    $crate::domain::user::User,
                )>,
                $crate::store::StoreError,
            > {
                let mut tx = $tx(self.pool().begin().await?);
                $crate::store::draws::DrawTx::applicants_in(&mut tx, event).await
            }

            async fn entrants(
                &self,
                event: $crate::domain::event::EventId,
            ) -> Result<
                Vec<$crate::domain::application::ApplicationRecord>,
                $crate::store::StoreError,
            > {
                let sql = format!(
                    "SELECT {} FROM applications WHERE event_id = $1 AND state = 'drawn' \
                     ORDER BY draw_rank",
                    $crate::store::draws::APPLICATION_COLUMNS
                );
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(event.as_i64())
                    .fetch_all(self.pool())
                    .await?;
                $crate::store::draws::applications_from(rows)
            }

            async fn revealed_secret(
                &self,
                event: $crate::domain::event::EventId,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let s: Option<Option<String>> = sqlx::query_scalar(
                    "SELECT draw_secret FROM events WHERE id = $1 AND drawn_at IS NOT NULL",
                )
                .bind(event.as_i64())
                .fetch_optional(self.pool())
                .await?;
                Ok(s.flatten())
            }

            async fn draws_due(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::domain::event::EventId>, $crate::store::StoreError> {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM events WHERE draw_at IS NOT NULL AND drawn_at IS NULL \
                     AND draw_at <= $1 AND status = 'published' ORDER BY draw_at LIMIT 100",
                )
                .bind(($time)(now))
                .fetch_all(self.pool())
                .await?;
                Ok(ids
                    .into_iter()
                    .filter_map($crate::domain::event::EventId::from_i64)
                    .collect())
            }
        }
    };
}

/// `impl DrawTx` for a backend's write transaction (a newtype of an sqlx
/// transaction), with the same `$users`/`$user` as [`draw_store!`].
macro_rules! draw_tx {
    ($tx:ty, $users:expr, $user:path) => {
        #[async_trait::async_trait]
        impl $crate::store::draws::DrawTx for $tx {
            async fn application_in(
                &mut self,
                id: $crate::domain::application::ApplicationId,
            ) -> Result<Option<$crate::domain::application::ApplicationRecord>, $crate::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM applications WHERE id = $1",
                    $crate::store::draws::APPLICATION_COLUMNS
                );
                let row: Option<$crate::store::draws::ApplicationRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id.as_i64())
                        .fetch_optional(&mut *self.0)
                        .await?;
                row.map($crate::store::draws::application_from).transpose()
            }

            async fn application_of(
                &mut self,
                event: $crate::domain::event::EventId,
                user: $crate::domain::user::UserId,
            ) -> Result<Option<$crate::domain::application::ApplicationRecord>, $crate::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM applications WHERE event_id = $1 AND user_id = $2 \
                     AND state <> 'withdrawn'",
                    $crate::store::draws::APPLICATION_COLUMNS
                );
                let row: Option<$crate::store::draws::ApplicationRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(event.as_i64())
                        .bind(user)
                        .fetch_optional(&mut *self.0)
                        .await?;
                row.map($crate::store::draws::application_from).transpose()
            }

            async fn applicants_in(
                &mut self,
                event: $crate::domain::event::EventId,
            ) -> Result<
                Vec<(
                    $crate::domain::application::ApplicationRecord,
                    $crate::domain::user::User,
                )>,
                $crate::store::StoreError,
            > {
                let apps =
                    $crate::store::draws::DrawTx::waiting_applications(self, event).await?;
                let users = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{} WHERE u.id IN (SELECT user_id FROM applications \
                     WHERE event_id = $1 AND state = 'applied')",
                    $users
                )))
                .bind(event.as_i64())
                .fetch_all(&mut *self.0)
                .await?
                .iter()
                .map($user)
                .collect::<Result<Vec<_>, _>>()?;
                $crate::store::draws::with_users(apps, users)
            }

            async fn waiting_applications(
                &mut self,
                event: $crate::domain::event::EventId,
            ) -> Result<Vec<$crate::domain::application::ApplicationRecord>, $crate::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM applications WHERE event_id = $1 AND state = 'applied' ORDER BY id",
                    $crate::store::draws::APPLICATION_COLUMNS
                );
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(event.as_i64())
                    .fetch_all(&mut *self.0)
                    .await?;
                $crate::store::draws::applications_from(rows)
            }

            async fn draw_secret(
                &mut self,
                event: $crate::domain::event::EventId,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let s: Option<Option<String>> =
                    sqlx::query_scalar("SELECT draw_secret FROM events WHERE id = $1")
                        .bind(event.as_i64())
                        .fetch_optional(&mut *self.0)
                        .await?;
                Ok(s.flatten())
            }

            async fn put_application(
                &mut self,
                a: &$crate::domain::application::ApplicationRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO applications (id, event_id, user_id, state, priority_group, \
                     draw_rank, booking_id, refusal, created_ms, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                     priority_group = excluded.priority_group, draw_rank = excluded.draw_rank, \
                     booking_id = excluded.booking_id, refusal = excluded.refusal, \
                     updated_ms = excluded.updated_ms",
                )
                .bind(a.id.as_i64())
                .bind(a.event.as_i64())
                .bind(a.user)
                .bind(a.state.as_str())
                .bind(a.group.as_deref())
                .bind(a.rank.map(i64::from))
                .bind(a.booking.map(|b| b.as_i64()))
                .bind(a.refusal.as_deref())
                .bind(a.created_at.timestamp_millis())
                .bind(a.updated_at.timestamp_millis())
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {draw_store, draw_tx};
