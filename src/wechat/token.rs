//! One WeChat access token for every node. WeChat's token lives 7,200 s,
//! and a fetch may invalidate the one before, so the nodes share it through
//! the database (`shared_tokens`): a node uses the stored token until five
//! minutes before it expires; then one node at a time (a lease in the same
//! row) fetches a new one with `stable_token` and stores it, while the
//! others wait for it. When WeChat refuses a token (40001, 42001), the node
//! that saw it fetches anew once: normally, and by force only when WeChat
//! gives back the very token it refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Wechat, WxError};
use crate::metrics::Metrics;
use crate::store::DynStore;

/// The token's row in `shared_tokens`.
pub const NAME: &str = "wechat_access_token";
/// A token is replaced this long before it expires.
const AHEAD: chrono::Duration = chrono::Duration::minutes(5);
/// How long a node may hold the right to fetch.
const LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How often a node waiting for another's fetch looks again.
const POLL: Duration = Duration::from_millis(100);

pub(crate) struct Tokens {
    store: DynStore,
    metrics: Arc<Metrics>,
    /// This node, as the lease names it.
    holder: String,
    /// The token last read or fetched, with when it expires.
    cached: Mutex<Option<(String, DateTime<Utc>)>>,
}

/// A token is used until `AHEAD` of its expiry, unless WeChat just refused it.
fn usable(token: &str, expires: DateTime<Utc>, rejected: Option<&str>) -> bool {
    expires - AHEAD > Utc::now() && Some(token) != rejected
}

fn store_err(e: crate::store::StoreError) -> WxError {
    WxError::Transport(format!("the database: {e}"))
}

impl Tokens {
    pub fn new(store: DynStore, metrics: Arc<Metrics>) -> Tokens {
        Tokens {
            store,
            metrics,
            holder: format!("node-{:016x}", rand::random::<u64>()),
            cached: Mutex::new(None),
        }
    }

    /// A token to call WeChat with; `rejected`: the one WeChat just refused.
    pub async fn get(&self, wx: &Wechat, rejected: Option<&str>) -> Result<String, WxError> {
        if let Some((t, exp)) = self.cached.lock().expect("not poisoned").clone()
            && usable(&t, exp, rejected)
        {
            return Ok(t);
        }
        let rounds = (LEASE.num_milliseconds() as u128 / POLL.as_millis()) as u32 + 1;
        for _ in 0..rounds {
            if let Some(t) = self.stored(rejected).await? {
                return Ok(t);
            }
            let now = Utc::now();
            if self
                .store
                .take_token_lease(NAME, &self.holder, now + LEASE, now)
                .await
                .map_err(store_err)?
            {
                // Another node may have stored a token between the read
                // above and taking the lease: look once more.
                if let Some(t) = self.stored(rejected).await? {
                    self.release().await;
                    return Ok(t);
                }
                return self.fetch(wx, rejected).await;
            }
            // Another node is fetching: its token will be in the row.
            tokio::time::sleep(POLL).await;
        }
        Err(WxError::Transport(
            "another node has held the WeChat token lease too long".into(),
        ))
    }

    /// The stored token, remembered, when it can be used.
    async fn stored(&self, rejected: Option<&str>) -> Result<Option<String>, WxError> {
        match self.store.shared_token(NAME).await.map_err(store_err)? {
            Some((t, exp)) if usable(&t, exp, rejected) => {
                *self.cached.lock().expect("not poisoned") = Some((t.clone(), exp));
                Ok(Some(t))
            }
            _ => Ok(None),
        }
    }

    /// Fetch under the lease, store, and release it.
    async fn fetch(&self, wx: &Wechat, rejected: Option<&str>) -> Result<String, WxError> {
        let mut got = self.fetch_once(wx, false).await;
        if let Ok((t, _)) = &got
            && Some(t.as_str()) == rejected
        {
            got = self.fetch_once(wx, true).await;
        }
        match got {
            Ok((token, expires_in)) => {
                let expires = Utc::now() + chrono::Duration::seconds(expires_in.clamp(60, 86_400));
                self.store
                    .put_shared_token(NAME, &token, expires, &self.holder)
                    .await
                    .map_err(store_err)?;
                *self.cached.lock().expect("not poisoned") = Some((token.clone(), expires));
                Ok(token)
            }
            Err(e) => {
                self.release().await;
                Err(e)
            }
        }
    }

    async fn release(&self) {
        if let Err(e) = self.store.release_token_lease(NAME, &self.holder).await {
            tracing::warn!(target: "yizhan::wechat", error = %e, "could not release the WeChat token lease");
        }
    }

    async fn fetch_once(&self, wx: &Wechat, force: bool) -> Result<(String, i64), WxError> {
        let got = wx.fetch_token(force).await;
        self.metrics.wechat_token_fetch(force, got.is_ok());
        match &got {
            Ok(_) => {
                tracing::info!(target: "yizhan::wechat", force_refresh = force, "fetched a WeChat access token")
            }
            Err(e) => {
                tracing::warn!(target: "yizhan::wechat", force_refresh = force, error = %e, "fetching a WeChat access token failed")
            }
        }
        got
    }
}
