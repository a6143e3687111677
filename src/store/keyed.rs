//! Creates a client may retry with an `Idempotency-Key`, written once for
//! every backend: inside the create's own transaction the key's record is
//! read (and held) first; a retry of the same request answers with what the
//! first one created, and the first one's record is written in the same
//! transaction as what it created, so a crash leaves both or neither.
//! (Applications keep their whole answer through the same two calls;
//! creates keep the id of what they made. Bookings, decided in batches, keep
//! theirs in `store::batch`.)

use chrono::{DateTime, Utc};

use super::{Store, StoreError, WriteTx};
use crate::domain::event::{Event, EventDraft, EventId};
use crate::domain::idempotency::{self, IdempotencyRecord, Replay};
use crate::domain::user::UserId;

/// A keyed request: whose key, the key, and a hash of what it asked.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub user: UserId,
    pub key: String,
    pub request_hash: String,
}

/// What the key's first request stored (a create: the id it made), if this
/// is a retry of it; `KeyReuse` if the key was used for another request.
pub(super) async fn earlier(
    tx: &mut Box<dyn WriteTx>,
    key: Option<&Keyed>,
    at: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let Some(k) = key else { return Ok(None) };
    let found = tx.idempotencies(&[(k.user, k.key.clone())]).await?;
    match idempotency::judge(found.first().map(|(_, _, r)| r), &k.request_hash, at) {
        Replay::Fresh => Ok(None),
        Replay::Answer(id) => Ok(Some(id.to_owned())),
        Replay::KeyReuse => Err(StoreError::KeyReuse),
    }
}

/// Remember the key's answer, `body` (a create: the id it made), in the
/// request's own transaction.
pub(super) async fn remember(
    tx: &mut Box<dyn WriteTx>,
    key: Option<&Keyed>,
    body: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(k) = key else { return Ok(()) };
    let record = IdempotencyRecord {
        request_hash: k.request_hash.clone(),
        body: body.to_owned(),
        created_at: at,
    };
    tx.put_idempotencies(&[(k.user, k.key.clone(), record)])
        .await
}

/// A stored id that does not parse is a corrupt record.
pub(super) fn stored<T: std::str::FromStr>(id: &str) -> Result<T, StoreError> {
    id.parse()
        .map_err(|_| StoreError::Corrupt(format!("an idempotency record names '{id}'")))
}

impl dyn Store {
    /// A new event (see [`WriteTx::insert_event`]).
    pub async fn create_event(
        &self,
        draft: EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        Ok(self.create_event_keyed(draft, actor, at, None).await?.0)
    }

    /// A new event, or, for a retry of a keyed request, the event the first
    /// one created as it is now (`true`: replayed).
    pub async fn create_event_keyed(
        &self,
        draft: EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
        key: Option<&Keyed>,
    ) -> Result<(Event, bool), StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        if let Some(id) = earlier(&mut tx, key, at).await? {
            let event = tx
                .lock_event(stored::<EventId>(&id)?)
                .await?
                .ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            return Ok((event, true));
        }
        let event = tx.insert_event(&draft, actor, at).await?;
        remember(&mut tx, key, &event.id.to_string(), at).await?;
        tx.commit().await?;
        Ok((event, false))
    }
}
