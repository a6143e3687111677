//! Storage: the source of truth. Handlers and the index talk to [`Store`],
//! never to a database driver.
//!
//! The contract is backend-neutral: its types are the domain's or named
//! structs here, its errors say what happened ([`StoreError`]) without the
//! driver, and every write is given its time. It has three parts:
//! - reads and plain writes, split by concern ([`SiteStore`],
//!   [`AccountStore`], [`EventStore`]);
//! - [`WriteTx`]: the primitives of one write transaction (take the right
//!   lock, read a snapshot, apply the rules' effects, keep idempotent
//!   answers), which is all a backend implements for the commands;
//! - the commands themselves ([`commands`]): read a snapshot, ask the rules
//!   in `domain/`, apply, commit — written once for every backend.

pub mod batch;
pub mod commands;
pub mod draws;
pub mod holidays;
pub mod keyed;
pub mod postgres;
mod postgres_events;
mod postgres_holidays;
mod postgres_notify;
mod postgres_unions;
pub mod reader;
pub mod sms;
pub mod sqlite;
mod sqlite_events;
mod sqlite_holidays;
mod sqlite_notify;
mod sqlite_unions;
pub mod unions;
pub mod wechat;
pub mod writer;

pub use holidays::{HolidayStore, HolidayYearInfo, PutHolidays, YearChange};
pub use sms::{SmsBlock, SmsDeliveryState, SmsReceipt, SmsStore};
pub use unions::{Application, UnionStore};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::booking::{BookingRecord, Effect, HeldCounts, Waiting};
use crate::domain::event::{BookingId, BookingStatus, Event, EventDraft, EventId, EventKind};
use crate::domain::idempotency::IdempotencyRecord;
use crate::domain::notify::{NoticeType, NotificationId};
use crate::domain::otp::{CodeEffect, StoredCode};
use crate::domain::push::{NewSubscription, NotificationSettings, SubscriptionId};
use crate::domain::site::{Adcode, Site, SiteDraft, SiteId, SiteRecord};
use crate::domain::union::{self, MembershipId, MembershipRecord, Union, UnionId};
use crate::domain::user::{Phone, Profile, Role, User, UserId};

pub use commands::{Applied, ApplyCommand, BookRequest, Booked, Commands, OtpRequest};
pub use writer::{QueueBounds, Writer};

/// A driver's error, kept for the log but not part of the contract.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong below the HTTP layer. Details of `Database` are logged,
/// never shown to users.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (connection, I/O, a statement): not the caller's fault.
    #[error("database error: {0}")]
    Database(BackendError),
    #[error("migration error: {0}")]
    Migrate(BackendError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported database url '{0}' (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    /// The database could not take the request in time (a lock wait or a
    /// statement past its bound, no free connection): retry later.
    #[error("database busy: {0}")]
    Busy(BackendError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A conditional write found another version (optimistic concurrency).
    #[error("version conflict: the current version is {current}")]
    Conflict { current: i64 },
    /// A record with the same unique key exists (a site's `ref`, …).
    #[error("duplicate: {0}")]
    Duplicate(String),
    #[error("not found")]
    NotFound,
    /// The record is not in a state that allows this.
    #[error("{0}")]
    WrongState(String),
    /// A value the rules refuse; `field` names it.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// An Idempotency-Key was used before with a different request.
    #[error("idempotency key reused with a different request")]
    KeyReuse,
}

impl From<crate::domain::booking::Refused> for StoreError {
    fn from(r: crate::domain::booking::Refused) -> StoreError {
        use crate::domain::booking::Refused;
        match r {
            Refused::WrongState(why) => StoreError::WrongState(why),
            Refused::Invalid { field, detail } => StoreError::Invalid { field, detail },
        }
    }
}

/// One entry of a site's audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub user_id: Option<UserId>,
    pub version: i64,
    pub action: String,
    pub changes: serde_json::Value,
}

/// The result of an all-or-nothing import.
#[derive(Debug, Default, Clone)]
pub struct ImportOutcome {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// The sites created or updated, as stored (for the index).
    pub changed: Vec<Site>,
}

/// Reports how many of an import's sites are written so far (a progress bar).
pub type Progress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// What an import does, decided before anything is written (both backends):
/// a draft equal to the stored site with its ref is unchanged; one that
/// differs is the stored site's next version; a new ref is a new site. A ref
/// named twice is applied in order, the later on top of the earlier.
/// `existing` holds the stored sites the drafts' refs name.
pub(crate) fn plan_import(
    drafts: Vec<SiteDraft>,
    mut existing: std::collections::HashMap<String, Site>,
    at: DateTime<Utc>,
) -> Result<(ImportOutcome, Vec<Option<SiteDraft>>), StoreError> {
    let at = micros(at);
    let mut out = ImportOutcome::default();
    let mut olds = Vec::new();
    for draft in drafts {
        let Some(key) = draft.ext_ref.clone() else {
            return Err(StoreError::Corrupt("import draft without ref".into()));
        };
        let (site, old) = match existing.get(&key) {
            Some(old) if old.draft == draft => {
                out.unchanged += 1;
                continue;
            }
            Some(old) => {
                out.updated += 1;
                let site = Site {
                    id: old.id,
                    draft,
                    version: old.version + 1,
                    updated_at: at,
                };
                (site, Some(old.draft.clone()))
            }
            None => {
                out.created += 1;
                let site = Site {
                    id: SiteId::random(),
                    draft,
                    version: 1,
                    updated_at: at,
                };
                (site, None)
            }
        };
        existing.insert(key, site.clone());
        out.changed.push(site);
        olds.push(old);
    }
    Ok((out, olds))
}

/// One entry of the change feed, with the site as it is now.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: i64,
    pub site: Site,
}

/// A booking with its place on the waitlist (while waitlisted).
#[derive(Debug, Clone, PartialEq)]
pub struct BookingView {
    pub record: BookingRecord,
    pub waitlist_position: Option<u32>,
}

/// One of a person's bookings, with its event.
#[derive(Debug, Clone)]
pub struct UserBooking {
    pub booking: BookingView,
    pub event: Event,
}

/// A booking of an event with what its managers may see of the holder.
#[derive(Debug, Clone)]
pub struct AttendeeRow {
    pub booking: BookingRecord,
    pub phone: Phone,
    pub display_name: Option<String>,
}

/// The waitlist's length and the last arrival number given in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitlistTail {
    pub waitlisted: u32,
    pub last_seq: i64,
}

/// The rows of [`WriteTx::seats`]' one statement on either backend:
/// `("held", quota, count, NULL)` per quota, then `("tail", NULL,
/// waitlisted, last_seq)`.
type SeatRow = (String, Option<String>, i64, Option<i64>);

/// The statuses that hold a seat, as SQL.
const HOLDS: &str = "('confirmed', 'offered', 'checked_in')";

/// [`WriteTx::seats`]' one statement on either backend (`p`: the event id's
/// placeholder): held seats by quota (at most the capacity's entries of
/// `bookings_event`), then the waitlist's tail as the triggers keep it on
/// the event row (`migrations/*/20261205000004_waitlist_tail.sql`).
fn seats_sql(p: &str) -> String {
    format!(
        "SELECT 'held', quota, count(*), NULL FROM bookings \
         WHERE event_id = {p} AND status IN {HOLDS} GROUP BY quota \
         UNION ALL SELECT 'tail', NULL, waitlisted, last_seq FROM events WHERE id = {p}"
    )
}

fn seats_from_rows(rows: Vec<SeatRow>) -> Result<(HeldCounts, WaitlistTail), StoreError> {
    let mut held = HeldCounts::new();
    let mut tail = None;
    for (what, quota, n, last) in rows {
        let n = u32::try_from(n).map_err(|_| corrupt("seat count", n))?;
        match what.as_str() {
            "held" => {
                held.insert(quota, n);
            }
            "tail" => {
                tail = Some(WaitlistTail {
                    waitlisted: n,
                    last_seq: last.unwrap_or(0),
                })
            }
            other => return Err(corrupt("seat row", other)),
        }
    }
    Ok((held, tail.ok_or_else(|| corrupt("seat rows", "no tail"))?))
}

/// Sites: the registry, its change feed, search and management.
#[async_trait]
pub trait SiteStore: Send + Sync + 'static {
    /// Every site, retired ones included, in id order.
    async fn all_sites(&self) -> Result<Vec<Site>, StoreError> {
        let mut sites = Vec::new();
        self.each_site(&mut |s| sites.push(s)).await?;
        Ok(sites)
    }
    /// [`SiteStore::all_sites`] one at a time, as they are read: building the
    /// index from a million sites never holds them all twice.
    async fn each_site(&self, f: &mut (dyn FnMut(Site) + Send)) -> Result<(), StoreError>;
    /// [`SiteStore::each_site`] as the index takes them, borrowed where the
    /// backend can (start-up reads a million of these).
    async fn each_site_record(
        &self,
        f: &mut (dyn for<'a> FnMut(SiteRecord<'a>) + Send),
    ) -> Result<(), StoreError> {
        self.each_site(&mut |mut s| f(s.record())).await
    }
    async fn get_site(&self, id: SiteId) -> Result<Option<Site>, StoreError>;
    async fn count_sites(&self) -> Result<u64, StoreError>;
    /// The database's size in bytes (its pages; SQLite's WAL not counted).
    async fn storage_bytes(&self) -> Result<u64, StoreError>;
    /// Import `drafts` into an empty registry, atomically: of several
    /// processes starting at once on one database exactly one seeds it.
    /// `None` (and nothing written) when the registry already has sites.
    async fn seed_sites(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
    ) -> Result<Option<ImportOutcome>, StoreError>;
    /// Upsert by `ext_ref` in one transaction: every draft must carry a ref.
    /// A draft equal to the stored site changes nothing (no new version, no feed entry).
    async fn import_sites(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
    ) -> Result<ImportOutcome, StoreError> {
        self.import_sites_with_progress(drafts, at, &|_| ()).await
    }
    /// [`SiteStore::import_sites`], reporting the sites written so far as it goes.
    async fn import_sites_with_progress(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
        progress: Progress<'_>,
    ) -> Result<ImportOutcome, StoreError>;
    /// The highest change-feed sequence number (0 when nothing was ever written).
    async fn last_change_seq(&self) -> Result<i64, StoreError>;
    /// Changes after `seq`, oldest first, at most `limit`. A site changed several
    /// times appears once per change, each time in its current state.
    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError>;
    /// Non-retired sites whose name or address contains every term (a substring
    /// match, for Chinese text), at most `limit`, in no particular order.
    async fn search_sites(&self, terms: &[String], limit: i64) -> Result<Vec<SiteId>, StoreError>;
    /// A new site (random id, version 1), audited as created by `actor`;
    /// `Duplicate` when its ref is taken.
    async fn create_site(
        &self,
        draft: SiteDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Site, StoreError>;
    /// Replace a site's content if it is still at `expected_version`
    /// (`Conflict` with the current version otherwise, `NotFound` if absent),
    /// writing the change feed and the audit log in the same transaction.
    async fn update_site(
        &self,
        id: SiteId,
        expected_version: i64,
        draft: SiteDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Site, StoreError>;
    /// A site's audit log, oldest first.
    async fn site_history(&self, id: SiteId) -> Result<Vec<AuditEntry>, StoreError>;
}

/// People, their tokens and follows.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    async fn user_by_phone(&self, phone: &Phone) -> Result<Option<User>, StoreError>;
    /// Create or update a user with this role and (for managers) site scope.
    async fn put_user(
        &self,
        phone: &Phone,
        role: Role,
        sites: &[SiteId],
        at: DateTime<Utc>,
    ) -> Result<User, StoreError>;
    /// The user signing in with `phone`: a new worker if unknown.
    async fn sign_in_user(&self, phone: &Phone, at: DateTime<Utc>) -> Result<User, StoreError>;
    async fn set_profile(&self, id: UserId, profile: &Profile) -> Result<(), StoreError>;
    async fn create_token(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The user a live (unexpired, unrevoked) token belongs to.
    async fn token_user(
        &self,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let found = self.token_users(&[token_hash.to_owned()]).await?;
        Ok(found
            .into_iter()
            .find(|(_, expires, _)| *expires > at)
            .map(|(_, _, user)| user))
    }
    /// Of these token hashes, the unrevoked ones, with when each expires and
    /// whose it is, in one query (requests' lookups, together:
    /// [`reader::TokenReader`]).
    async fn token_users(
        &self,
        token_hashes: &[String],
    ) -> Result<Vec<(String, DateTime<Utc>, User)>, StoreError>;
    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError>;
    async fn set_follow(
        &self,
        user: UserId,
        site: SiteId,
        follow: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn follows(&self, user: UserId) -> Result<Vec<SiteId>, StoreError>;
    /// A named secret, created (32 random bytes) on first use and shared by all nodes.
    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError>;
}

/// Events and bookings: reads, and what the worker asks. Every change of a
/// booking is a command in [`commands`].
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError>;
    /// Published events overlapping `[from, to]`, by start.
    async fn published_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError>;
    /// Every event at a site, whatever its status, by start (at most 500, the
    /// latest starting first past that many).
    async fn site_events(&self, site: SiteId) -> Result<Vec<Event>, StoreError>;
    async fn get_booking(&self, id: BookingId) -> Result<Option<BookingView>, StoreError>;
    /// A person's bookings with their events, oldest booking first.
    async fn user_bookings(&self, user: UserId) -> Result<Vec<UserBooking>, StoreError>;
    /// Every booking of an event with its holder, in a constant number of
    /// queries whatever the event's size, in booking order.
    async fn attendees(&self, event: EventId) -> Result<Vec<AttendeeRow>, StoreError>;
    /// Events with an offer whose deadline is at or before `at`, soonest first.
    async fn events_with_lapsed_offers(
        &self,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError>;
    /// Events that ended at or before `at` and are not settled yet (no-shows
    /// not marked), earliest end first.
    async fn events_to_settle(
        &self,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError>;
    /// Published events starting in `(at, at + lead]` whose `lead` reminder
    /// has not gone out.
    async fn events_to_remind(
        &self,
        lead: chrono::Duration,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EventId>, StoreError>;
    /// Drop idempotency records created before `before`; how many went.
    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// A notification as stored: the inbox entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    pub id: NotificationId,
    pub user: UserId,
    pub kind: NoticeType,
    pub title: String,
    pub body: String,
    pub url: String,
    pub data: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub topic: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// The channels a notification is delivered on besides the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelName {
    Push,
    Sms,
    /// WeChat subscribe messages (issue 25).
    Wechat,
}

impl ChannelName {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelName::Push => "push",
            ChannelName::Sms => "sms",
            ChannelName::Wechat => "wechat",
        }
    }

    /// The channel a stored name means.
    pub fn parse(s: &str) -> Result<ChannelName, StoreError> {
        [ChannelName::Push, ChannelName::Sms, ChannelName::Wechat]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("channel: {s}")))
    }
}

/// A browser's push subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    pub id: SubscriptionId,
    pub user: UserId,
    pub endpoint: String,
    /// The browser's 65-byte uncompressed P-256 public key.
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
    /// Only these types are pushed here; `None`: all.
    pub types: Option<Vec<NoticeType>>,
    pub created_at: DateTime<Utc>,
}

/// Which delivery: a notification on a channel, to a target (for push, the
/// subscription's id; 0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    pub notification: NotificationId,
    pub channel: ChannelName,
    pub target: i64,
}

/// A delivery a worker has claimed: the notification, its channel and whom
/// it goes to.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub notification: NotificationRecord,
    pub channel: ChannelName,
    /// For push, the subscription's id; 0 otherwise.
    pub target: i64,
    /// For push, the subscription (`None` once it was deleted).
    pub subscription: Option<PushSubscription>,
    /// The person's choices (muted types, quiet hours).
    pub settings: NotificationSettings,
    /// Tries so far.
    pub attempts: u32,
    pub phone: Phone,
    /// A push of this notification was accepted.
    pub pushed: bool,
    /// What became of this notification's WeChat message so far.
    pub wechat: crate::domain::notify::WechatState,
    /// The person's openid in the mini program, when WeChat is bound.
    pub openid: Option<String>,
}

impl DeliveryJob {
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey {
            notification: self.notification.id,
            channel: self.channel,
            target: self.target,
        }
    }
}

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The channel accepted it.
    Sent,
    /// The channel accepted it under the provider's id for it (an SMS
    /// provider's `BizId` or `SerialNo`, which its receipt names).
    SentAs(String),
    /// Not due yet (quiet hours, the fallback's wait): look again then.
    Later(DateTime<Utc>),
    /// It failed for now: try again then (an attempt is counted).
    Retry { at: DateTime<Utc>, why: String },
    /// It failed for good.
    Failed(String),
    /// Not to be sent after all (read meanwhile, muted…).
    Skipped(String),
    /// The target is gone for good (a push service said 404 or 410): the
    /// delivery failed and the subscription is deleted.
    Gone(String),
}

impl DeliveryOutcome {
    /// Its name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryOutcome::Sent | DeliveryOutcome::SentAs(_) => "sent",
            DeliveryOutcome::Later(_) => "later",
            DeliveryOutcome::Retry { .. } => "retried",
            DeliveryOutcome::Failed(_) => "failed",
            DeliveryOutcome::Skipped(_) => "skipped",
            DeliveryOutcome::Gone(_) => "gone",
        }
    }

    /// How the delivery's row changes, the same on every backend.
    pub(crate) fn row_update(&self) -> DeliveryUpdate<'_> {
        let (state, due_at, counts_a_try, error) = match self {
            DeliveryOutcome::Sent | DeliveryOutcome::SentAs(_) => ("sent", None, true, None),
            DeliveryOutcome::Later(t) => ("pending", Some(*t), false, None),
            DeliveryOutcome::Retry { at, why } => ("pending", Some(*at), true, Some(why.as_str())),
            DeliveryOutcome::Failed(why) | DeliveryOutcome::Gone(why) => {
                ("failed", None, true, Some(why.as_str()))
            }
            DeliveryOutcome::Skipped(why) => ("skipped", None, false, Some(why.as_str())),
        };
        DeliveryUpdate {
            state,
            due_at,
            counts_a_try,
            error,
            removes_subscription: matches!(self, DeliveryOutcome::Gone(_)),
            reference: match self {
                DeliveryOutcome::SentAs(r) => Some(r.as_str()),
                _ => None,
            },
        }
    }
}

/// A delivery row's new values for an outcome ([`DeliveryOutcome::row_update`]).
pub(crate) struct DeliveryUpdate<'a> {
    /// `pending` (to be tried again at `due_at`), `sent`, `failed`, `skipped`.
    pub state: &'static str,
    /// When to look again; `None` keeps it.
    pub due_at: Option<DateTime<Utc>>,
    pub counts_a_try: bool,
    /// Why it failed or was skipped; `None` keeps the last one.
    pub error: Option<&'a str>,
    /// A push service said the subscription is gone: delete it.
    pub removes_subscription: bool,
    /// The provider's id for what it accepted (`None` keeps the stored one).
    pub reference: Option<&'a str>,
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub pending: u64,
    /// When the oldest pending delivery that is due fell due.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// The inbox and the outbox of deliveries.
#[async_trait]
pub trait NotifyStore: Send + Sync + 'static {
    /// A person's notifications, newest first, older than `before` if given.
    async fn inbox(
        &self,
        user: UserId,
        before: Option<NotificationId>,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError>;
    /// Mark one read (`NotFound` unless it is the person's).
    async fn mark_read(
        &self,
        user: UserId,
        id: NotificationId,
        at: DateTime<Utc>,
    ) -> Result<NotificationRecord, StoreError>;
    /// Mark every unread one read; how many were.
    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError>;
    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError>;
    /// Claim up to `limit` pending deliveries due at `now` that no other
    /// worker holds, leasing them until `lease_until` (a worker that dies
    /// leaves them to the others when its lease ends).
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DeliveryJob>, StoreError>;
    /// The outbox's depth at `now`.
    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError>;
    /// Record what became of claimed deliveries, all in one transaction (a
    /// group commit: one disk flush for many answers). A `Gone` outcome also
    /// deletes its push subscription.
    async fn finish_deliveries(
        &self,
        done: &[(DeliveryKey, DeliveryOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Subscribe a browser; an endpoint already known keeps its id and
    /// takes the new keys, types and owner. `true` when it was new.
    async fn add_subscription(
        &self,
        user: UserId,
        sub: &NewSubscription,
        at: DateTime<Utc>,
    ) -> Result<(PushSubscription, bool), StoreError>;
    /// A person's subscriptions, oldest first.
    async fn subscriptions(&self, user: UserId) -> Result<Vec<PushSubscription>, StoreError>;
    /// Unsubscribe (`NotFound` unless it is the person's).
    async fn delete_subscription(&self, user: UserId, id: SubscriptionId)
    -> Result<(), StoreError>;
    async fn notification_settings(&self, user: UserId)
    -> Result<NotificationSettings, StoreError>;
    async fn put_notification_settings(
        &self,
        user: UserId,
        settings: &NotificationSettings,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The whole storage contract.
#[async_trait]
pub trait Store:
    SiteStore
    + AccountStore
    + EventStore
    + NotifyStore
    + HolidayStore
    + UnionStore
    + SmsStore
    + wechat::WechatStore
    + draws::DrawStore
{
    /// Cheap liveness probe of the database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Open a write transaction. On SQLite it takes the database's write lock
    /// at once (`BEGIN IMMEDIATE`); a backend with row locks takes them as
    /// the snapshot is read ([`WriteTx::lock_event`]). Dropping it without
    /// [`WriteTx::commit`] rolls everything back.
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError>;
    /// Resolves when another process may have written to the change feed
    /// (PostgreSQL: a `NOTIFY`, or a reconnect after which notifications may
    /// have been missed). Only a wake-up: followers poll as well, so a backend
    /// without notifications never resolves.
    async fn wait_for_change(&self) {
        std::future::pending::<()>().await
    }
}

/// The primitives of one write transaction: what a backend implements so the
/// [`commands`] run on it. None of them knows a rule.
#[async_trait]
pub trait WriteTx: draws::DrawTx + Send {
    // --- events and bookings -------------------------------------------------
    /// A new event (version 1, nothing held; a draw's secret and its seal
    /// made here), as stored.
    async fn insert_event(
        &mut self,
        draft: &EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError>;
    /// Read an event and hold it against concurrent commands until commit
    /// (PostgreSQL: `FOR UPDATE`; SQLite: the write lock is already held).
    async fn lock_event(&mut self, id: EventId) -> Result<Option<Event>, StoreError>;
    async fn booking(&mut self, id: BookingId) -> Result<Option<BookingRecord>, StoreError>;
    /// An event's bookings in these statuses, in booking order.
    async fn bookings_of(
        &mut self,
        event: EventId,
        statuses: &[BookingStatus],
    ) -> Result<Vec<BookingRecord>, StoreError>;
    /// Seats held in an event, by quota.
    async fn held_counts(&mut self, event: EventId) -> Result<HeldCounts, StoreError>;
    /// The waitlist in arrival order.
    async fn waitlist(&mut self, event: EventId) -> Result<Vec<Waiting>, StoreError>;
    /// Seats held by quota and the waitlist's tail, in one read (a batch's
    /// bookings of an event start from them).
    async fn seats(&mut self, event: EventId) -> Result<(HeldCounts, WaitlistTail), StoreError>;
    /// The person's seat-holding bookings of events of `kind` starting in `[from, to)`.
    async fn seats_held_in(
        &mut self,
        user: UserId,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u32, StoreError>;
    /// Of `users`, those with an active booking of `event`, and its id (a
    /// batch's bookings ask once).
    async fn active_bookings(
        &mut self,
        event: EventId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, BookingId)>, StoreError>;
    /// Insert new bookings, each with its first status logged (a batch's, together).
    async fn insert_bookings(&mut self, records: &[BookingRecord]) -> Result<(), StoreError>;
    /// A batch's new bookings and the answers to replay for their keys,
    /// together (SQLite: one round trip to its thread).
    async fn insert_booked(
        &mut self,
        bookings: &[BookingRecord],
        keys: &[(UserId, String, IdempotencyRecord)],
    ) -> Result<(), StoreError> {
        if !bookings.is_empty() {
            self.insert_bookings(bookings).await?;
        }
        if !keys.is_empty() {
            self.put_idempotencies(keys).await?;
        }
        Ok(())
    }
    /// Did the event's reminder `lead_hours` before its start go out?
    async fn reminded(&mut self, event: EventId, lead_hours: u32) -> Result<bool, StoreError>;
    /// Write the rules' effects in order. A transition whose booking is no
    /// longer in its `from` status fails with `WrongState` (the caller rolls back).
    async fn apply(&mut self, effects: &[Effect]) -> Result<(), StoreError>;

    // --- unions and memberships ------------------------------------------------
    /// The person's pending and active memberships, holding the person
    /// against concurrent membership commands until commit (PostgreSQL: an
    /// advisory lock; SQLite: the write lock is already held).
    async fn lock_memberships(&mut self, user: UserId)
    -> Result<Vec<MembershipRecord>, StoreError>;
    async fn union(&mut self, id: UnionId) -> Result<Option<Union>, StoreError>;
    async fn membership(
        &mut self,
        id: MembershipId,
    ) -> Result<Option<MembershipRecord>, StoreError>;
    /// The last member number given under `adcode` (0: none yet), held
    /// against concurrent commands until commit.
    async fn member_seq(&mut self, adcode: Adcode) -> Result<u64, StoreError>;
    /// Write the membership rules' effects in order. An update whose
    /// membership is no longer in its `from` status fails with `WrongState`.
    async fn apply_memberships(&mut self, effects: &[union::Effect]) -> Result<(), StoreError>;
    /// The person's active membership, if any (what eligibility trusts).
    async fn active_membership(
        &mut self,
        user: UserId,
    ) -> Result<Option<MembershipRecord>, StoreError>;

    // --- idempotent answers --------------------------------------------------
    /// The stored records of these keys (a batch's, together), holding
    /// each key against a concurrent request with it until commit
    /// (PostgreSQL: advisory locks, taken in the order given).
    async fn idempotencies(
        &mut self,
        keys: &[(UserId, String)],
    ) -> Result<Vec<(UserId, String, IdempotencyRecord)>, StoreError>;
    /// Store answers to replay, replacing older ones with the same key.
    async fn put_idempotencies(
        &mut self,
        records: &[(UserId, String, IdempotencyRecord)],
    ) -> Result<(), StoreError>;

    // --- sign-in codes --------------------------------------------------------
    /// Times of the code requests from `phone` (or client address `ip`) after
    /// `since`, newest first, at most `limit`.
    async fn otp_requests(
        &mut self,
        by: OtpRequester<'_>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DateTime<Utc>>, StoreError>;
    /// Record a code request and store its code (replacing an earlier one);
    /// requests older than `forget_before` are dropped.
    async fn put_otp(
        &mut self,
        phone: &Phone,
        ip: &str,
        at: DateTime<Utc>,
        code: &StoredCode,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn stored_code(&mut self, phone: &Phone) -> Result<Option<StoredCode>, StoreError>;
    async fn apply_code(&mut self, phone: &Phone, effect: CodeEffect) -> Result<(), StoreError>;

    /// Make everything written durable.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Whose code requests to count.
#[derive(Debug, Clone, Copy)]
pub enum OtpRequester<'a> {
    Phone(&'a Phone),
    Ip(&'a str),
}

pub type DynStore = Arc<dyn Store>;

/// How a server database is used; SQLite ignores these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOptions {
    /// Connections in this process's pool.
    pub pool_size: u32,
    /// Where the pooled connections (every query) go, when not to the
    /// database URL itself: PgBouncer in transaction mode. Migrations and the
    /// change listener always use the database URL, directly (they need a
    /// session of their own).
    pub pool_url: Option<String>,
    /// A statement running longer is cancelled (0: no bound).
    pub statement_timeout: Duration,
    /// A lock wait longer than this gives up: the request answers 503 with
    /// `Retry-After` (0: no bound).
    pub lock_timeout: Duration,
    /// SQLite: when a commit is on disk (see [`SqliteSync`]).
    pub sqlite_sync: SqliteSync,
}

/// SQLite's `synchronous` setting in WAL mode: what a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    /// Every commit is fsynced before it returns (and so before a booking
    /// answers 201): a confirmed write survives a crash of the process and
    /// a power cut or kernel panic too. About one fsync per commit.
    #[default]
    Full,
    /// Commits reach the WAL file without an fsync (fsynced at checkpoints):
    /// they survive a crash of the process, but the last ones before a power
    /// cut or kernel panic may be lost, answers already given. For disks
    /// whose write cache survives a power cut, or data that may be lost.
    Normal,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            pool_size: 10,
            pool_url: None,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            sqlite_sync: SqliteSync::Full,
        }
    }
}

/// Open the backend named by the URL's scheme and apply its migrations.
pub async fn connect(url: &str) -> Result<DynStore, StoreError> {
    connect_with(url, &DbOptions::default()).await
}

/// As [`connect`], with the pool and its bounds given.
pub async fn connect_with(url: &str, opts: &DbOptions) -> Result<DynStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect_with(url, opts.sqlite_sync).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, opts).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// A stored value that does not decode: `what` and why.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// (person, booking id) rows as [`WriteTx::active_bookings`] answers them.
pub(crate) fn active_pairs(rows: Vec<(i64, i64)>) -> Result<Vec<(UserId, BookingId)>, StoreError> {
    rows.into_iter()
        .map(|(user, id)| {
            let booking = BookingId::from_i64(id).ok_or_else(|| corrupt("booking id", id))?;
            Ok((user, booking))
        })
        .collect()
}

/// A user's own columns as both backends read them (`sqlx::FromRow`); their
/// sites and unions come apart, as each dialect aggregates them.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: UserId,
    phone: String,
    role: String,
    display_name: Option<String>,
    gender: Option<String>,
    birth_year: Option<i32>,
    marital_status: Option<String>,
    union_member_no: Option<String>,
    employer: Option<String>,
    frontline: Option<bool>,
}

/// A stored optional value parsed, or `corrupt` naming its column.
fn parse_optional<T: std::str::FromStr>(
    value: Option<String>,
    column: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| v.parse())
        .transpose()
        .map_err(|e| corrupt(column, e))
}

impl UserRow {
    /// The user, with the ids of their sites and unions.
    pub(crate) fn into_user(self, sites: Vec<i64>, unions: Vec<i64>) -> Result<User, StoreError> {
        Ok(User {
            id: self.id,
            phone: self.phone.parse().map_err(|e| corrupt("phone", e))?,
            role: self.role.parse().map_err(|e| corrupt("role", e))?,
            sites: sites.into_iter().filter_map(SiteId::from_i64).collect(),
            unions: unions.into_iter().filter_map(UnionId::from_i64).collect(),
            profile: Profile {
                display_name: self.display_name,
                gender: parse_optional(self.gender, "gender")?,
                birth_year: self.birth_year,
                marital_status: parse_optional(self.marital_status, "marital_status")?,
                union_member_no: self.union_member_no,
                employer: self.employer,
                frontline: self.frontline,
            },
        })
    }
}

/// How long a code request counts towards a rate limit at most.
pub const OTP_REQUEST_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Times are stored to the microsecond: a write truncates its time so that
/// what it returns equals what a later read gives back.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Notice types as stored (a JSON array), both backends.
pub(crate) fn types_to_json(types: &[NoticeType]) -> String {
    serde_json::to_string(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .expect("strings serialise")
}

/// Notice types from their stored JSON array.
pub(crate) fn types_from_json(json: &str) -> Result<Vec<NoticeType>, StoreError> {
    let names: Vec<String> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("notice types: {e}")))?;
    names
        .iter()
        .map(|n| n.parse().map_err(StoreError::Corrupt))
        .collect()
}

/// Settings from their stored columns (all `None`: never set).
pub(crate) fn settings_from_columns(
    muted: Option<&str>,
    quiet_from: Option<&str>,
    quiet_to: Option<&str>,
) -> Result<NotificationSettings, StoreError> {
    let muted = muted.map(types_from_json).transpose()?.unwrap_or_default();
    let quiet = match (quiet_from, quiet_to) {
        (Some(f), Some(t)) => Some(
            crate::domain::push::QuietHours::parse(f, t)
                .map_err(|(_, e)| StoreError::Corrupt(format!("quiet hours: {e}")))?,
        ),
        _ => None,
    };
    Ok(NotificationSettings::new(muted, quiet))
}

/// The stored columns of quiet hours.
pub(crate) fn quiet_columns(s: &NotificationSettings) -> (Option<String>, Option<String>) {
    use crate::domain::push::QuietHours;
    match s.quiet_hours {
        Some(q) => (
            Some(QuietHours::format(q.from)),
            Some(QuietHours::format(q.to)),
        ),
        None => (None, None),
    }
}
