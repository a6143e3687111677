//! Unions and memberships: their reads and plain writes ([`UnionStore`]),
//! and the membership commands (join, transfer, approve, reject), written once
//! for every backend as the booking commands are: open a transaction, read the
//! snapshot under the person's lock, let `domain/union.rs` decide, apply,
//! commit. A refused command rolls back and so changes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::keyed::{self, Keyed};
use super::{Store, StoreError, WriteTx};
use crate::domain::union::{
    self, Decision, JoinSnapshot, MembershipId, MembershipRecord, MembershipStatus, ReviewSnapshot,
    Union, UnionDraft, UnionId,
};
use crate::domain::user::{Phone, User, UserId};

/// A pending application as a union's admins see it.
#[derive(Debug, Clone)]
pub struct Application {
    pub membership: MembershipRecord,
    pub phone: Phone,
    pub display_name: Option<String>,
    pub employer: Option<String>,
}

/// Unions, their admins, and reads of memberships.
#[async_trait]
pub trait UnionStore: Send + Sync + 'static {
    /// A new union (code version 1); `Invalid` (`parent_id`) when its parent
    /// does not exist.
    async fn create_union(&self, draft: UnionDraft, at: DateTime<Utc>)
    -> Result<Union, StoreError>;
    async fn get_union(&self, id: UnionId) -> Result<Option<Union>, StoreError>;
    /// Replace a union's content (its code version stays); `NotFound` if absent.
    async fn update_union(&self, id: UnionId, draft: UnionDraft) -> Result<Union, StoreError>;
    /// Unions whose adcode starts with `prefix` (every union for ""), by id.
    async fn unions_by_adcode(&self, prefix: &str) -> Result<Vec<Union>, StoreError>;
    /// Unions with a location, for "the nearest union".
    async fn located_unions(&self) -> Result<Vec<Union>, StoreError>;
    /// The union, then the federations above it, nearest first (empty when
    /// there is no such union).
    async fn union_ancestry(&self, id: UnionId) -> Result<Vec<UnionId>, StoreError>;
    /// The union and every union below it in the federation tree.
    async fn union_subtree(&self, id: UnionId) -> Result<Vec<Union>, StoreError>;
    /// A new join code: the code version moves on, so earlier codes fail.
    async fn rotate_join_code(&self, id: UnionId) -> Result<Union, StoreError>;
    async fn get_membership(
        &self,
        id: MembershipId,
    ) -> Result<Option<MembershipRecord>, StoreError>;
    /// A person's memberships and applications, newest first (at one
    /// instant: the active one, then a pending one, then the rest).
    async fn user_memberships(&self, user: UserId) -> Result<Vec<MembershipRecord>, StoreError>;
    /// A union's pending applications, oldest first, with the applicants.
    async fn applications(&self, union: UnionId) -> Result<Vec<Application>, StoreError>;
    /// How many memberships of each of these unions are in each status now
    /// (one grouped count, whatever the unions' size).
    async fn membership_counts(
        &self,
        unions: &[UnionId],
    ) -> Result<Vec<(UnionId, MembershipStatus, u32)>, StoreError>;
    /// The memberships of these unions that became active or ended in
    /// `[from, to)`: what moved in a report's months.
    async fn membership_moves(
        &self,
        unions: &[UnionId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MembershipRecord>, StoreError>;
    /// Create or update a user as a union admin of `unions` (their site
    /// scope is cleared), in one transaction.
    async fn put_union_admin(
        &self,
        phone: &Phone,
        unions: &[UnionId],
        at: DateTime<Utc>,
    ) -> Result<User, StoreError>;
}

/// Write a decision's effects and commit.
async fn commit<T>(mut tx: Box<dyn WriteTx>, d: Decision<T>) -> Result<T, StoreError> {
    tx.apply_memberships(&d.effects).await?;
    tx.commit().await?;
    Ok(d.outcome)
}

/// What a join or transfer reads: the union, the person's open memberships
/// (under the person's lock) and the union's adcode counter.
async fn join_snapshot(
    tx: &mut Box<dyn WriteTx>,
    union: UnionId,
    user: UserId,
) -> Result<JoinSnapshot, StoreError> {
    let open = tx.lock_memberships(user).await?;
    let union = tx.union(union).await?.ok_or(StoreError::NotFound)?;
    let last_member_seq = tx.member_seq(union.draft.adcode).await?;
    Ok(JoinSnapshot {
        union,
        open,
        last_member_seq,
    })
}

/// A join or a transfer, decided by `decide` on the snapshot, with its
/// Idempotency-Key kept in the same transaction.
async fn keyed_membership(
    store: &dyn Store,
    at: DateTime<Utc>,
    key: Option<&Keyed>,
    decide: impl FnOnce(
        &JoinSnapshot,
        DateTime<Utc>,
    ) -> Result<Decision<MembershipRecord>, crate::domain::booking::Refused>,
    union: UnionId,
    user: UserId,
) -> Result<(MembershipRecord, bool), StoreError> {
    let at = super::micros(at);
    let mut tx = store.begin().await?;
    if let Some(id) = keyed::earlier(&mut tx, key, at).await? {
        let record = tx
            .membership(keyed::stored(&id)?)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        return Ok((record, true));
    }
    let s = join_snapshot(&mut tx, union, user).await?;
    let d = decide(&s, at)?;
    keyed::remember(&mut tx, key, &d.outcome.id.to_string(), at).await?;
    Ok((commit(tx, d).await?, false))
}

impl dyn Store {
    /// `user` joins `union` (see [`union::join`]); `NotFound` for no such union.
    pub async fn join_union(
        &self,
        user: &User,
        union: UnionId,
        at: DateTime<Utc>,
    ) -> Result<MembershipRecord, StoreError> {
        Ok(self.join_union_keyed(user, union, at, None).await?.0)
    }

    /// [`Self::join_union`], or for a retry of a keyed request the membership
    /// the first one made, as it is now (`true`: replayed).
    pub async fn join_union_keyed(
        &self,
        user: &User,
        union: UnionId,
        at: DateTime<Utc>,
        key: Option<&Keyed>,
    ) -> Result<(MembershipRecord, bool), StoreError> {
        keyed_membership(
            self,
            at,
            key,
            |s, at| union::join(s, user, MembershipId::random(), at),
            union,
            user.id,
        )
        .await
    }

    /// Move `user`'s active membership `from` to `union` (see
    /// [`union::transfer`]); a keyed retry as for [`Self::join_union_keyed`].
    pub async fn transfer_membership(
        &self,
        user: &User,
        from: MembershipId,
        union: UnionId,
        at: DateTime<Utc>,
        key: Option<&Keyed>,
    ) -> Result<(MembershipRecord, bool), StoreError> {
        keyed_membership(
            self,
            at,
            key,
            |s, at| union::transfer(s, user, from, MembershipId::random(), at),
            union,
            user.id,
        )
        .await
    }

    /// Approve a pending application (by admin `by`).
    pub async fn approve_membership(
        &self,
        id: MembershipId,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<MembershipRecord, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let user = tx.membership(id).await?.ok_or(StoreError::NotFound)?.user;
        let open = tx.lock_memberships(user).await?;
        // Read again under the person's lock: the decision sees what is committed.
        let application = tx.membership(id).await?.ok_or(StoreError::NotFound)?;
        let union = tx
            .union(application.union)
            .await?
            .ok_or(StoreError::NotFound)?;
        let last_member_seq = tx.member_seq(union.draft.adcode).await?;
        let s = ReviewSnapshot {
            union,
            application,
            open,
            last_member_seq,
        };
        let d = union::approve(&s, by, at)?;
        commit(tx, d).await
    }

    /// The applicant `user` withdraws a pending application.
    pub async fn withdraw_membership(
        &self,
        id: MembershipId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<MembershipRecord, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        tx.lock_memberships(user).await?;
        let application = tx.membership(id).await?.ok_or(StoreError::NotFound)?;
        let d = union::withdraw(&application, user, at)?;
        commit(tx, d).await
    }

    /// Reject a pending application (by admin `by`), saying why.
    pub async fn reject_membership(
        &self,
        id: MembershipId,
        reason: &str,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<MembershipRecord, StoreError> {
        let at = super::micros(at);
        let mut tx = self.begin().await?;
        let user = tx.membership(id).await?.ok_or(StoreError::NotFound)?.user;
        tx.lock_memberships(user).await?;
        let application = tx.membership(id).await?.ok_or(StoreError::NotFound)?;
        let union = tx
            .union(application.union)
            .await?
            .ok_or(StoreError::NotFound)?;
        let d = union::reject(&application, &union, reason, by, at)?;
        commit(tx, d).await
    }
}
