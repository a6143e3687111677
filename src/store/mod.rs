//! Storage: the source of truth. Handlers and the index talk to [`Store`], never
//! to a database driver, so PostgreSQL can arrive as a second backend beside
//! [`sqlite::SqliteStore`] without touching them.

pub mod holidays;
pub mod sqlite;
mod sqlite_events;
mod sqlite_holidays;

pub use holidays::{HolidayStore, HolidayYearInfo, PutHolidays, YearChange};
pub use sqlite_events::BookingRow;

use std::sync::Arc;

use async_trait::async_trait;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::event::{BookOutcome, BookingId, Event, EventDraft, EventId};
use crate::domain::site::{Site, SiteDraft, SiteId};
use crate::domain::user::{Phone, Profile, Role, User, UserId};

/// What can go wrong below the HTTP layer. Details are logged, never shown to users.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported database url '{0}' (expected sqlite:…)")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A conditional write found another version (optimistic concurrency).
    #[error("version conflict: the current version is {current}")]
    Conflict { current: i64 },
    #[error("not found")]
    NotFound,
    /// The record is not in a state that allows this.
    #[error("{0}")]
    WrongState(String),
    /// An Idempotency-Key was used before with a different request.
    #[error("idempotency key reused with a different request")]
    KeyReuse,
}

/// The outcome of checking a sign-in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpCheck {
    /// Right: the code is used up.
    Ok,
    Wrong {
        attempts_left: i64,
    },
    Expired,
    /// Too many wrong tries: the code is dead.
    Locked,
    /// No code was requested (or it was used).
    Missing,
}

/// A request for a sign-in code.
#[derive(Debug, Clone, Copy)]
pub struct OtpRequest<'a> {
    pub phone: &'a Phone,
    /// The client's address.
    pub ip: &'a str,
    pub code_hash: &'a str,
    pub at: DateTime<Utc>,
    /// How long the code lives.
    pub ttl: Duration,
    /// (requests, window) limits per phone and per address.
    pub phone_limits: &'a [(i64, Duration)],
    pub ip_limits: &'a [(i64, Duration)],
}

/// A booking attempt.
#[derive(Debug, Clone, Copy)]
pub struct BookRequest<'a> {
    pub user: &'a User,
    pub event: EventId,
    /// The client's Idempotency-Key, if sent.
    pub key: Option<&'a str>,
    /// What the request said (a hash of it), to tell a retry from a new request with the same key.
    pub request_hash: &'a str,
    pub at: DateTime<Utc>,
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

/// One entry of the change feed, with the site as it is now.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: i64,
    pub site: Site,
}

#[async_trait]
pub trait Store: HolidayStore + Send + Sync + 'static {
    /// Every site, retired ones included, in id order.
    async fn all_sites(&self) -> Result<Vec<Site>, StoreError>;
    async fn get_site(&self, id: SiteId) -> Result<Option<Site>, StoreError>;
    async fn count_sites(&self) -> Result<u64, StoreError>;
    /// Upsert by `ext_ref` in one transaction: every draft must carry a ref.
    /// A draft equal to the stored site changes nothing (no new version, no feed entry).
    async fn import_sites(&self, drafts: Vec<SiteDraft>) -> Result<ImportOutcome, StoreError>;
    /// The highest change-feed sequence number (0 when nothing was ever written).
    async fn last_change_seq(&self) -> Result<i64, StoreError>;
    /// Changes after `seq`, oldest first, at most `limit`. A site changed several
    /// times appears once per change, each time in its current state.
    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError>;
    /// Non-retired sites whose name or address contains every term (a substring
    /// match, for Chinese text), at most `limit`, in no particular order.
    async fn search_sites(&self, terms: &[String], limit: i64) -> Result<Vec<SiteId>, StoreError>;
    /// Cheap liveness probe of the database.
    async fn ping(&self) -> Result<(), StoreError>;

    // --- site management -------------------------------------------------
    /// A new site (random id, version 1), audited as created by `actor`.
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

    // --- people -----------------------------------------------------------
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

    // --- sign-in codes and tokens ----------------------------------------
    /// Record a code request and store the new code's hash, unless a rate limit
    /// is hit: then nothing is stored and the wait until a request would pass
    /// is returned.
    async fn request_otp(&self, req: OtpRequest<'_>) -> Result<Result<(), Duration>, StoreError>;
    /// Check a code; a right one is consumed, a wrong one counts against `max_attempts`.
    async fn check_otp(
        &self,
        phone: &Phone,
        code_hash: &str,
        at: DateTime<Utc>,
        max_attempts: i64,
    ) -> Result<OtpCheck, StoreError>;
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
    ) -> Result<Option<User>, StoreError>;
    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError>;

    // --- follows ----------------------------------------------------------
    async fn set_follow(
        &self,
        user: UserId,
        site: SiteId,
        follow: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn follows(&self, user: UserId) -> Result<Vec<SiteId>, StoreError>;

    // --- events and bookings ---------------------------------------------
    async fn create_event(
        &self,
        draft: EventDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError>;
    async fn get_event(&self, id: EventId) -> Result<Option<Event>, StoreError>;
    /// Published events overlapping `[from, to]`, by start.
    async fn published_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError>;
    /// Decide and record a booking attempt in one transaction; with a key, a
    /// retry within 24 h gets the stored outcome back (`true`: replayed), and a
    /// different request with the same key is `KeyReuse`.
    async fn book(&self, req: BookRequest<'_>) -> Result<(BookOutcome, bool), StoreError>;
    async fn get_booking(&self, id: BookingId) -> Result<Option<BookingRow>, StoreError>;
    /// Cancel; a freed seat goes to the first fitting waitlisted person in the
    /// same transaction (returned).
    async fn cancel_booking(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<(BookingRow, Option<BookingId>), StoreError>;
    async fn user_bookings(&self, user: UserId) -> Result<Vec<BookingRow>, StoreError>;
    /// Check a confirmed booking in: `Ok(first check-in time)` — now, or the
    /// earlier time of a previous scan (`true` then). Other statuses are `Conflict`.
    async fn check_in(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, bool), StoreError>;
    /// After an event has ended, its unchecked confirmed bookings become no-shows.
    async fn mark_no_shows(&self, event: EventId, at: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Every booking of an event, with its holder.
    async fn event_bookings(
        &self,
        event: EventId,
    ) -> Result<Vec<(BookingRow, User, Option<DateTime<Utc>>)>, StoreError>;
    /// Offers past their time lapse (cancelled) and pass to the next fitting
    /// waitlisted person, in one transaction. Returns how many lapsed.
    async fn expire_offers(&self, event: EventId, at: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Accept an offered seat before it lapses.
    async fn accept_offer(
        &self,
        id: BookingId,
        at: DateTime<Utc>,
    ) -> Result<BookingRow, StoreError>;
    /// Set an event's status; cancelling it cancels every active booking in the same transaction.
    async fn set_event_status(
        &self,
        id: EventId,
        status: crate::domain::event::EventStatus,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError>;
    /// Replace an event's editable fields (not its status); a capacity below the
    /// seats held is `WrongState`.
    async fn update_event(
        &self,
        id: EventId,
        draft: EventDraft,
        at: DateTime<Utc>,
    ) -> Result<Event, StoreError>;
    /// A named secret, created (32 random bytes) on first use and shared by all nodes.
    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// Open the backend named by the URL's scheme and apply its migrations.
pub async fn connect(url: &str) -> Result<DynStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
