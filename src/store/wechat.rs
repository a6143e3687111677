//! What yizhan keeps for WeChat (issue 25): each person's openid, their
//! subscribe-message consents, and the access token every node shares. The
//! same statements on both backends (times are Unix milliseconds), stamped
//! out once for each by [`wechat_store!`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::user::UserId;

#[async_trait]
pub trait WechatStore: Send + Sync + 'static {
    /// A shared token and when it expires, once one was stored.
    async fn shared_token(&self, name: &str)
    -> Result<Option<(String, DateTime<Utc>)>, StoreError>;
    /// Take the right to fetch `name` anew until `until`, unless another
    /// holder has it past `now`: `true` when taken.
    async fn take_token_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Store the fetched token and give the lease up.
    async fn put_shared_token(
        &self,
        name: &str,
        value: &str,
        expires: DateTime<Utc>,
        holder: &str,
    ) -> Result<(), StoreError>;
    /// Give the lease up without a token (the fetch failed).
    async fn release_token_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// The person an openid is bound to.
    async fn wechat_user(&self, openid: &str) -> Result<Option<UserId>, StoreError>;
    /// A person's openid, if bound.
    async fn wechat_openid(&self, user: UserId) -> Result<Option<String>, StoreError>;
    /// Bind `openid` to `user`, replacing the person's earlier openid and the
    /// openid's earlier person.
    async fn bind_wechat(
        &self,
        openid: &str,
        unionid: Option<&str>,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Unbind the person's WeChat (their consents go too): `true` when bound.
    async fn unbind_wechat(&self, user: UserId) -> Result<bool, StoreError>;
    /// Record what the person answered `wx.requestSubscribeMessage`: each
    /// accepted template gains one consent, each rejected one has none left.
    async fn record_consents(
        &self,
        user: UserId,
        accepted: &[String],
        rejected: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// One-time consents left for a template.
    async fn consents_left(&self, user: UserId, template_id: &str) -> Result<u32, StoreError>;
    /// Spend one consent: `false` when none was left.
    async fn spend_consent(
        &self,
        user: UserId,
        template_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// WeChat said the person has no consent left (43101): none is.
    async fn clear_consent(
        &self,
        user: UserId,
        template_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("a time of {ms} ms")))
}

/// `impl WechatStore` for a backend whose `pool()` runs these statements.
macro_rules! wechat_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::wechat::WechatStore for $store {
            async fn shared_token(
                &self,
                name: &str,
            ) -> Result<Option<(String, chrono::DateTime<chrono::Utc>)>, $crate::store::StoreError>
            {
                let row: Option<(String, i64)> = sqlx::query_as(
                    "SELECT value, expires_ms FROM shared_tokens \
                     WHERE name = $1 AND value IS NOT NULL AND expires_ms IS NOT NULL",
                )
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
                row.map(|(v, ms)| Ok((v, $crate::store::wechat::from_millis(ms)?)))
                    .transpose()
            }

            async fn take_token_lease(
                &self,
                name: &str,
                holder: &str,
                until: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO shared_tokens (name, lease_holder, lease_until_ms) \
                     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET \
                     lease_holder = excluded.lease_holder, lease_until_ms = excluded.lease_until_ms \
                     WHERE shared_tokens.lease_until_ms IS NULL OR shared_tokens.lease_until_ms < $4",
                )
                .bind(name)
                .bind(holder)
                .bind(until.timestamp_millis())
                .bind(now.timestamp_millis())
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn put_shared_token(
                &self,
                name: &str,
                value: &str,
                expires: chrono::DateTime<chrono::Utc>,
                holder: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE shared_tokens SET value = $2, expires_ms = $3, lease_holder = NULL, \
                     lease_until_ms = NULL WHERE name = $1 AND lease_holder = $4",
                )
                .bind(name)
                .bind(value)
                .bind(expires.timestamp_millis())
                .bind(holder)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn release_token_lease(
                &self,
                name: &str,
                holder: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE shared_tokens SET lease_holder = NULL, lease_until_ms = NULL \
                     WHERE name = $1 AND lease_holder = $2",
                )
                .bind(name)
                .bind(holder)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn wechat_user(
                &self,
                openid: &str,
            ) -> Result<Option<$crate::domain::user::UserId>, $crate::store::StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT user_id FROM wechat_accounts WHERE openid = $1")
                        .bind(openid)
                        .fetch_optional(self.pool())
                        .await?,
                )
            }

            async fn wechat_openid(
                &self,
                user: $crate::domain::user::UserId,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT openid FROM wechat_accounts WHERE user_id = $1")
                        .bind(user)
                        .fetch_optional(self.pool())
                        .await?,
                )
            }

            async fn bind_wechat(
                &self,
                openid: &str,
                unionid: Option<&str>,
                user: $crate::domain::user::UserId,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool().begin().await?;
                sqlx::query("DELETE FROM wechat_accounts WHERE user_id = $1 OR openid = $2")
                    .bind(user)
                    .bind(openid)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO wechat_accounts (openid, unionid, user_id, bound_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(openid)
                .bind(unionid)
                .bind(user)
                .bind(at.timestamp_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn unbind_wechat(
                &self,
                user: $crate::domain::user::UserId,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.pool().begin().await?;
                let done = sqlx::query("DELETE FROM wechat_accounts WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM wechat_consents WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_consents(
                &self,
                user: $crate::domain::user::UserId,
                accepted: &[String],
                rejected: &[String],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool().begin().await?;
                for (templates, gain) in [(accepted, true), (rejected, false)] {
                    for t in templates {
                        sqlx::query(
                            "INSERT INTO wechat_consents (user_id, template_id, remaining, updated_ms) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, template_id) DO UPDATE SET \
                             remaining = CASE WHEN $3 = 1 THEN wechat_consents.remaining + 1 ELSE 0 END, \
                             updated_ms = excluded.updated_ms",
                        )
                        .bind(user)
                        .bind(t)
                        .bind(i32::from(gain))
                        .bind(at.timestamp_millis())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn consents_left(
                &self,
                user: $crate::domain::user::UserId,
                template_id: &str,
            ) -> Result<u32, $crate::store::StoreError> {
                let n: Option<i32> = sqlx::query_scalar(
                    "SELECT remaining FROM wechat_consents WHERE user_id = $1 AND template_id = $2",
                )
                .bind(user)
                .bind(template_id)
                .fetch_optional(self.pool())
                .await?;
                Ok(n.unwrap_or(0).max(0) as u32)
            }

            async fn spend_consent(
                &self,
                user: $crate::domain::user::UserId,
                template_id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE wechat_consents SET remaining = remaining - 1, updated_ms = $3 \
                     WHERE user_id = $1 AND template_id = $2 AND remaining > 0",
                )
                .bind(user)
                .bind(template_id)
                .bind(at.timestamp_millis())
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn clear_consent(
                &self,
                user: $crate::domain::user::UserId,
                template_id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE wechat_consents SET remaining = 0, updated_ms = $3 \
                     WHERE user_id = $1 AND template_id = $2",
                )
                .bind(user)
                .bind(template_id)
                .bind(at.timestamp_millis())
                .execute(self.pool())
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use wechat_store;
