//! Every request with a bearer token looks its token up; a crowd's lookups
//! are read together. A task takes the lookups that are waiting and answers
//! them with one query ([`super::AccountStore::token_users`]), at most
//! [`QUERIES`] at once; a lone lookup on an idle server is read at once,
//! alone. Each answer is read after its request asked, so a revoked token is
//! refused exactly as before.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{DynStore, StoreError};
use crate::domain::user::User;

/// Lookups in one query at most.
const MAX_LOOKUPS: usize = 512;

/// Queries under way at once at most: a lookup that arrives while one is
/// read need not wait for it (SQLite's readers run beside each other and
/// beside the writer), and the store's pool keeps connections for the rest.
const QUERIES: usize = 2;

struct Lookup {
    hash: String,
    at: DateTime<Utc>,
    reply: oneshot::Sender<Result<Option<User>, StoreError>>,
}

/// Token lookups, read together (see the module's notes).
#[derive(Clone)]
pub struct TokenReader {
    tx: mpsc::UnboundedSender<Lookup>,
    /// Queries and lookups so far.
    counts: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
}

impl std::fmt::Debug for TokenReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenReader")
    }
}

impl TokenReader {
    /// Start the reader's task on `store` (stops when every handle is dropped).
    pub fn start(store: DynStore) -> TokenReader {
        let (tx, rx) = mpsc::unbounded_channel();
        let counts = std::sync::Arc::new(Default::default());
        tokio::spawn(run(store, rx, std::sync::Arc::clone(&counts)));
        TokenReader { tx, counts }
    }

    /// Queries run and lookups answered so far.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.counts[0].load(Relaxed), self.counts[1].load(Relaxed))
    }

    /// The user a live (unexpired, unrevoked) token belongs to.
    pub async fn user(
        &self,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            hash: token_hash.to_owned(),
            at,
            reply,
        };
        if self.tx.send(lookup).is_err() {
            return Err(StoreError::Busy("the token reader has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Busy("the token reader dropped a lookup".into())))
    }
}

async fn run(
    store: DynStore,
    mut rx: mpsc::UnboundedReceiver<Lookup>,
    counts: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
) {
    let mut buf = Vec::with_capacity(MAX_LOOKUPS);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(QUERIES));
    loop {
        // While every query is under way, the next lookups gather.
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if rx.recv_many(&mut buf, MAX_LOOKUPS).await == 0 {
            return;
        }
        let lookups: Vec<Lookup> = buf.drain(..).filter(|l| !l.reply.is_closed()).collect();
        if lookups.is_empty() {
            continue;
        }
        counts[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        counts[1].fetch_add(lookups.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let store = store.clone();
        tokio::spawn(async move {
            answer(&*store, lookups).await;
            drop(permit);
        });
    }
}

/// Read the tokens of `lookups` in one query and answer each.
async fn answer(store: &dyn super::Store, lookups: Vec<Lookup>) {
    let mut hashes: Vec<String> = lookups.iter().map(|l| l.hash.clone()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    match store.token_users(&hashes).await {
        Ok(found) => {
            let found: HashMap<String, (DateTime<Utc>, User)> = found
                .into_iter()
                .map(|(hash, expires, user)| (hash, (expires, user)))
                .collect();
            for l in lookups {
                let user = found
                    .get(&l.hash)
                    .filter(|(expires, _)| *expires > l.at)
                    .map(|(_, user)| user.clone());
                let _ = l.reply.send(Ok(user));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, lookups = lookups.len(), "token lookups failed");
            for l in lookups {
                let _ = l.reply.send(Err(StoreError::Busy(
                    format!("the token could not be read: {e}").into(),
                )));
            }
        }
    }
}
