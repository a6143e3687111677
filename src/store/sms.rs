//! What yizhan keeps of texts: numbers that cannot be texted, and the
//! providers' receipts. The same statements on both backends (times are
//! Unix milliseconds), stamped out once for each by [`sms_store!`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::notify::NotificationId;
use crate::domain::sms::Unreachable;
use crate::domain::user::Phone;

/// A number that cannot be texted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsBlock {
    pub reason: Unreachable,
    /// The provider's error code that said so.
    pub code: String,
    pub provider: String,
    pub since: DateTime<Utc>,
}

/// A delivery receipt (回执) for one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReceipt {
    /// The notification it was (our `OutId` / `SessionContext`), when it was one.
    pub notification: Option<NotificationId>,
    /// The provider's id for the text (`BizId`, `SerialNo`).
    pub reference: Option<String>,
    pub delivered: bool,
    /// The provider's status code and words.
    pub detail: String,
}

/// A notice's text as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsDeliveryState {
    /// `pending`, `sent`, `failed`, `skipped`.
    pub state: String,
    pub attempts: i64,
    /// The provider's id for it.
    pub provider_ref: Option<String>,
    /// `delivered` or `failed`, once its receipt came.
    pub receipt: Option<String>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait SmsStore: Send + Sync + 'static {
    /// Why `phone` cannot be texted, if it cannot.
    async fn sms_unreachable(&self, phone: &Phone) -> Result<Option<SmsBlock>, StoreError>;
    /// Stop texting `phone` (replacing an earlier reason).
    async fn set_sms_unreachable(&self, phone: &Phone, block: &SmsBlock) -> Result<(), StoreError>;
    /// `phone` proved it can be texted again (a code arrived and was used, a
    /// text was delivered): `true` when it had been marked.
    async fn clear_sms_unreachable(&self, phone: &Phone) -> Result<bool, StoreError>;
    /// Record a receipt on its delivery, found by our id or the provider's.
    /// A text that got no answer and still waits is settled as sent. How
    /// many deliveries it matched (0: a sign-in code's, or unknown).
    async fn record_sms_receipt(
        &self,
        r: &SmsReceipt,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// A notification's text, if it has one.
    async fn sms_delivery(&self, n: NotificationId)
    -> Result<Option<SmsDeliveryState>, StoreError>;
}

pub(crate) fn block_from_row(
    (reason, code, provider, since_ms): (String, String, String, i64),
) -> Result<SmsBlock, StoreError> {
    Ok(SmsBlock {
        reason: Unreachable::parse(&reason)
            .ok_or_else(|| StoreError::Corrupt(format!("sms_unreachable.reason: {reason}")))?,
        code,
        provider,
        since: DateTime::from_timestamp_millis(since_ms)
            .ok_or_else(|| StoreError::Corrupt(format!("sms_unreachable.since_ms: {since_ms}")))?,
    })
}

/// `impl SmsStore` for a backend whose `pool()` runs these statements, with
/// `$time` turning a time into its `done_at` column's type.
macro_rules! sms_store {
    ($store:ty, $time:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::sms::SmsStore for $store {
            async fn sms_unreachable(
                &self,
                phone: &$crate::domain::user::Phone,
            ) -> Result<Option<$crate::store::sms::SmsBlock>, $crate::store::StoreError> {
                let row: Option<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT reason, code, provider, since_ms FROM sms_unreachable WHERE phone = $1",
                )
                .bind(phone.as_str())
                .fetch_optional(self.pool())
                .await?;
                row.map($crate::store::sms::block_from_row).transpose()
            }

            async fn set_sms_unreachable(
                &self,
                phone: &$crate::domain::user::Phone,
                b: &$crate::store::sms::SmsBlock,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO sms_unreachable (phone, reason, code, provider, since_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (phone) DO UPDATE SET \
                     reason = excluded.reason, code = excluded.code, provider = excluded.provider, \
                     since_ms = excluded.since_ms",
                )
                .bind(phone.as_str())
                .bind(b.reason.as_str())
                .bind(&b.code)
                .bind(&b.provider)
                .bind(b.since.timestamp_millis())
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn clear_sms_unreachable(
                &self,
                phone: &$crate::domain::user::Phone,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query("DELETE FROM sms_unreachable WHERE phone = $1")
                    .bind(phone.as_str())
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_sms_receipt(
                &self,
                r: &$crate::store::sms::SmsReceipt,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE deliveries SET receipt = $1, receipt_detail = $2, receipt_ms = $3, \
                     provider_ref = coalesce(provider_ref, $4), \
                     done_at = CASE WHEN state = 'pending' THEN $5 ELSE done_at END, \
                     claimed_until = CASE WHEN state = 'pending' THEN NULL ELSE claimed_until END, \
                     state = CASE WHEN state = 'pending' THEN 'sent' ELSE state END \
                     WHERE channel = 'sms' AND (notification_id = $6 OR provider_ref = $4)",
                )
                .bind(if r.delivered { "delivered" } else { "failed" })
                .bind(&r.detail)
                .bind(at.timestamp_millis())
                .bind(r.reference.as_deref())
                .bind(($time)(at))
                .bind(r.notification.map(|n| n.as_i64()))
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected())
            }

            async fn sms_delivery(
                &self,
                n: $crate::domain::notify::NotificationId,
            ) -> Result<Option<$crate::store::sms::SmsDeliveryState>, $crate::store::StoreError> {
                let row: Option<(String, i64, Option<String>, Option<String>, Option<String>)> =
                    sqlx::query_as(
                        "SELECT state, CAST(attempts AS BIGINT), provider_ref, receipt, last_error \
                         FROM deliveries WHERE notification_id = $1 AND channel = 'sms'",
                    )
                    .bind(n.as_i64())
                    .fetch_optional(self.pool())
                    .await?;
                Ok(row.map(|(state, attempts, provider_ref, receipt, last_error)| {
                    $crate::store::sms::SmsDeliveryState {
                        state,
                        attempts,
                        provider_ref,
                        receipt,
                        last_error,
                    }
                }))
            }
        }
    };
}

pub(crate) use sms_store;
