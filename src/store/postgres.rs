//! PostgreSQL: one primary shared by several stateless nodes.
//!
//! - Writes run under READ COMMITTED and lock only what they must: a booking
//!   command locks its event's row (`lock_event`), sign-in codes lock their
//!   phone and address (transaction-scoped advisory locks). Every write
//!   transaction bounds its lock waits (`SET LOCAL lock_timeout`); a wait past
//!   it is [`StoreError::Busy`], which the API answers 503 with `Retry-After`.
//! - The change feed hands out positions in commit order: a site-writing
//!   transaction moves the one-row `site_feed_counter` as its last statement
//!   and holds that row's lock until it commits, so a reader that sees
//!   position n has already seen every position below it. The same statement
//!   `NOTIFY`s the other nodes; they also poll, so a lost notification only
//!   delays them.
//! - Migrations run on their own connection under sqlx's `pg_advisory_lock`,
//!   and seeding under a transaction-scoped advisory lock: several nodes may
//!   start at once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};
use tokio::sync::Notify;

use super::postgres_events::PgTx;
use super::{
    AccountStore, AuditEntry, Change, DbOptions, ImportOutcome, Progress, SiteStore, Store,
    StoreError, WriteTx, micros, plan_import,
};
use crate::domain::site::{AmenitySet, ClosureInfo, Site, SiteDraft, SiteId, Status};
use crate::domain::union::UnionId;
use crate::domain::user::{Phone, Profile, Role, User, UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel on which site-writing transactions wake the other nodes.
pub const CHANGES_CHANNEL: &str = "yizhan_site_changes";

/// Advisory lock keys (`pg_advisory_xact_lock(namespace, key)`).
pub(super) mod lock_ns {
    /// Seeding the empty registry (key 0).
    pub const SEED: i32 = 1;
    /// A phone's sign-in codes (key `hashtext(phone)`).
    pub const PHONE: i32 = 2;
    /// A client address's code requests (key `hashtext(ip)`).
    pub const IP: i32 = 3;
    /// A person's seats across events (key `hashtext(user id)`).
    pub const USER: i32 = 4;
    /// One Idempotency-Key of one person (key `hashtext(user id : key)`).
    pub const IDEMPOTENCY: i32 = 5;
    /// A person's memberships (key `hashtext(user id)`).
    pub const MEMBERSHIP: i32 = 6;
    /// An adcode's member-number counter (key `hashtext(adcode)`).
    pub const MEMBER_NO: i32 = 7;
}

/// Rows per bulk statement in an import.
const CHUNK: usize = 5_000;

pub struct PgStore {
    pool: PgPool,
    opts: DbOptions,
    /// Woken by the listener task: a notification, or a reconnect.
    changed: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
    /// The newest migration this build knows: readiness fails below it.
    latest_migration: i64,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl PgStore {
    pub async fn connect(url: &str, opts: &DbOptions) -> Result<PgStore, StoreError> {
        let mut base = PgConnectOptions::from_str(url)?;
        if base.get_application_name().is_none() {
            base = base.application_name("yizhan");
        }
        // Migrations on a direct connection of their own, without the pool's
        // timeouts: sqlx holds `pg_advisory_lock` while it applies them, and a
        // second node starting meanwhile waits for the first to finish.
        let direct = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await?;
        MIGRATOR.run(&direct).await?;
        warn_if_not_durable(&direct).await?;
        direct.close().await;

        // Queries through a pooler if one is named; the session-bound work above and below stays direct.
        let pool_base = match &opts.pool_url {
            Some(u) => {
                let o = PgConnectOptions::from_str(u)?;
                if o.get_application_name().is_none() {
                    o.application_name("yizhan")
                } else {
                    o
                }
            }
            None => base.clone(),
        };
        let pooled = pool_base.options([
            (
                "statement_timeout",
                format!("{}ms", ms(opts.statement_timeout)),
            ),
            ("lock_timeout", format!("{}ms", ms(opts.lock_timeout))),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.pool_size.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(pooled)
            .await?;
        // LISTEN needs a session of its own (never through a transaction-mode pooler).
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(base);
        let changed = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(listen_pool, changed.clone()));
        Ok(PgStore {
            pool,
            opts: opts.clone(),
            changed,
            listener,
            latest_migration: MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0),
        })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction: READ COMMITTED, with its lock waits and
    /// statements bounded here as well as per connection (a transaction-mode
    /// pooler may not pass connection options on).
    pub(super) async fn write_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.write_tx_bounded(self.opts.lock_timeout, self.opts.statement_timeout)
            .await
    }

    async fn write_tx_bounded(
        &self,
        lock: Duration,
        statement: Duration,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '{}ms'; \
             SET LOCAL statement_timeout = '{}ms'",
            ms(lock),
            ms(statement)
        );
        Ok(self.pool.begin_with(AssertSqlSafe(begin)).await?)
    }
}

/// Commit a write transaction with no statement bound on the `COMMIT`
/// itself. With synchronous replication the commit waits for the standby,
/// and a cancelled wait (a `statement_timeout`, a cancel request) does not
/// undo it: the transaction has already committed on the primary and the
/// client is told it succeeded, though no standby may have it — an answer
/// that a failover would then lose. So the bound set by [`PgStore::write_tx`]
/// covers every statement but this one.
pub(super) async fn commit(mut tx: Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Did `e` come from losing the database rather than from the request: a
/// connection that broke or could not be made (a primary killed, HAProxy with
/// no primary behind it), a server shutting down or still starting
/// (`57P01`-`57P03`), a connection exception (class `08`), a standby that
/// refuses writes while a failover settles (`25006`), or no free connection?
/// Such a request answers 503 with `Retry-After` and is safe to retry: what
/// it wrote committed whole or not at all, and a booking's Idempotency-Key
/// commits with it, so the retry replays the answer or books anew.
pub fn connection_lost(e: &StoreError) -> bool {
    match e {
        StoreError::Database(b) | StoreError::Busy(b) => b
            .downcast_ref::<sqlx::Error>()
            .is_some_and(sqlx_connection_lost),
        _ => false,
    }
}

fn sqlx_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "25006" | "53300")
        }),
        _ => false,
    }
}

/// Listen for the feed's notifications and wake the follower; after every
/// (re)connect wake it too, since notifications sent meanwhile are lost.
async fn listen(pool: PgPool, changed: Arc<Notify>) {
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.ignore_pool_close_event(true);
            l.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut l = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "change listener cannot connect; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        changed.notify_one();
        loop {
            match l.try_recv().await {
                Ok(Some(_)) => changed.notify_one(),
                Ok(None) => {
                    tracing::warn!("change listener lost its connection and reconnected");
                    changed.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    break;
                }
            }
        }
        drop(l);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) use super::corrupt;

/// Whole seconds, as SQLite keeps the times of codes, tokens and keys: both
/// backends then answer alike.
pub(super) fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Escape LIKE's wildcards so a user's `%` or `_` matches itself.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A site's columns for a query aliasing `sites` as `alias`.
fn site_columns(alias: &str) -> String {
    format!(
        "{a}.id, {a}.ext_ref, {a}.kind, {a}.name, {a}.address, {a}.adcode, {a}.lat, {a}.lon, \
         {a}.amenities, {a}.opening_hours, {a}.phone, {a}.photos::text AS photos, {a}.status, \
         {a}.version, {a}.updated_at, {a}.status_reason, {a}.reopens_at, \
         {a}.closures::text AS closures, {a}.union_id",
        a = alias
    )
}

fn site_from_row(row: &PgRow) -> Result<Site, StoreError> {
    let id: i64 = row.try_get("id")?;
    let photos: String = row.try_get("photos")?;
    let closures: String = row.try_get("closures")?;
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let adcode: String = row.try_get("adcode")?;
    let amenities: i64 = row.try_get("amenities")?;
    Ok(Site {
        id: SiteId::from_i64(id).ok_or_else(|| corrupt("id", id))?,
        draft: SiteDraft {
            ext_ref: row.try_get("ext_ref")?,
            kind: kind.parse().map_err(|e| corrupt("kind", e))?,
            name: row.try_get("name")?,
            address: row.try_get("address")?,
            adcode: adcode.parse().map_err(|e| corrupt("adcode", e))?,
            lat: row.try_get("lat")?,
            lon: row.try_get("lon")?,
            amenities: AmenitySet::from_bits(amenities as u32),
            opening_hours: row.try_get("opening_hours")?,
            phone: row.try_get("phone")?,
            photos: serde_json::from_str(&photos).map_err(|e| corrupt("photos", e))?,
            status: status.parse().map_err(|e| corrupt("status", e))?,
            closure: ClosureInfo {
                reason: row.try_get("status_reason")?,
                reopens_at: row.try_get("reopens_at")?,
                exceptions: serde_json::from_str(&closures).map_err(|e| corrupt("closures", e))?,
            },
            union_id: row
                .try_get::<Option<i64>, _>("union_id")?
                .and_then(UnionId::from_i64),
        },
        version: row.try_get("version")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Insert new sites or overwrite stored ones (same id) with their next version.
async fn write_sites(
    tx: &mut Transaction<'static, Postgres>,
    sites: &[&Site],
) -> Result<(), StoreError> {
    for chunk in sites.chunks(CHUNK) {
        let mut c = SiteColumns::default();
        for s in chunk {
            c.push(s);
        }
        sqlx::query(
            "INSERT INTO sites (id, ext_ref, kind, name, address, adcode, lat, lon, amenities, \
             opening_hours, phone, photos, status, status_reason, reopens_at, closures, version, \
             updated_at, union_id) \
             SELECT id, ext_ref, kind, name, address, adcode, lat, lon, amenities, opening_hours, \
             phone, photos::jsonb, status, status_reason, reopens_at, closures::jsonb, version, \
             updated_at, union_id \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::float8[], $8::float8[], $9::bigint[], $10::text[], $11::text[], $12::text[], \
             $13::text[], $14::text[], $15::timestamptz[], $16::text[], $17::bigint[], \
             $18::timestamptz[], $19::bigint[]) AS x(id, ext_ref, kind, name, address, adcode, \
             lat, lon, amenities, opening_hours, phone, photos, status, status_reason, reopens_at, \
             closures, version, updated_at, union_id) \
             ON CONFLICT (id) DO UPDATE SET ext_ref = excluded.ext_ref, kind = excluded.kind, \
             name = excluded.name, address = excluded.address, adcode = excluded.adcode, \
             lat = excluded.lat, lon = excluded.lon, amenities = excluded.amenities, \
             opening_hours = excluded.opening_hours, phone = excluded.phone, \
             photos = excluded.photos, status = excluded.status, \
             status_reason = excluded.status_reason, reopens_at = excluded.reopens_at, \
             closures = excluded.closures, version = excluded.version, \
             updated_at = excluded.updated_at, union_id = excluded.union_id",
        )
        .bind(c.id)
        .bind(c.ext_ref)
        .bind(c.kind)
        .bind(c.name)
        .bind(c.address)
        .bind(c.adcode)
        .bind(c.lat)
        .bind(c.lon)
        .bind(c.amenities)
        .bind(c.opening_hours)
        .bind(c.phone)
        .bind(c.photos)
        .bind(c.status)
        .bind(c.status_reason)
        .bind(c.reopens_at)
        .bind(c.closures)
        .bind(c.version)
        .bind(c.updated_at)
        .bind(c.union_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Sites as column arrays, for `unnest`.
#[derive(Default)]
struct SiteColumns {
    id: Vec<i64>,
    ext_ref: Vec<Option<String>>,
    kind: Vec<String>,
    name: Vec<String>,
    address: Vec<String>,
    adcode: Vec<String>,
    lat: Vec<f64>,
    lon: Vec<f64>,
    amenities: Vec<i64>,
    opening_hours: Vec<String>,
    phone: Vec<Option<String>>,
    photos: Vec<String>,
    status: Vec<String>,
    status_reason: Vec<Option<String>>,
    reopens_at: Vec<Option<DateTime<Utc>>>,
    closures: Vec<String>,
    version: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
    union_id: Vec<Option<i64>>,
}

impl SiteColumns {
    fn push(&mut self, s: &Site) {
        let d = &s.draft;
        self.id.push(s.id.as_i64());
        self.ext_ref.push(d.ext_ref.clone());
        self.kind.push(d.kind.as_str().to_owned());
        self.name.push(d.name.clone());
        self.address.push(d.address.clone());
        self.adcode.push(d.adcode.as_str().to_owned());
        self.lat.push(d.lat);
        self.lon.push(d.lon);
        self.amenities.push(i64::from(d.amenities.bits()));
        self.opening_hours.push(d.opening_hours.clone());
        self.phone.push(d.phone.clone());
        self.photos
            .push(serde_json::to_string(&d.photos).expect("strings serialize"));
        self.status.push(d.status.as_str().to_owned());
        self.status_reason.push(d.closure.reason.clone());
        self.reopens_at.push(d.closure.reopens_at);
        self.closures
            .push(serde_json::to_string(&d.closure.exceptions).expect("closures serialize"));
        self.version.push(s.version);
        self.updated_at.push(s.updated_at);
        self.union_id.push(d.union_id.map(UnionId::as_i64));
    }
}

/// One audit entry to write: the site as stored now and what it was.
struct Audit<'a> {
    site: &'a Site,
    old: Option<&'a SiteDraft>,
    actor: Option<UserId>,
}

/// Append to sites' audit logs, inside the caller's transaction.
async fn record_audits(
    tx: &mut Transaction<'static, Postgres>,
    entries: &[Audit<'_>],
) -> Result<(), StoreError> {
    for chunk in entries.chunks(CHUNK) {
        let mut site = Vec::with_capacity(chunk.len());
        let mut user = Vec::with_capacity(chunk.len());
        let mut version = Vec::with_capacity(chunk.len());
        let mut action = Vec::with_capacity(chunk.len());
        let mut changes = Vec::with_capacity(chunk.len());
        let mut at = Vec::with_capacity(chunk.len());
        for a in chunk {
            site.push(a.site.id.as_i64());
            user.push(a.actor);
            version.push(a.site.version);
            action.push(
                match (a.old, a.site.draft.status) {
                    (None, _) => "create",
                    (Some(_), Status::Retired) => "retire",
                    _ => "update",
                }
                .to_owned(),
            );
            changes.push(SiteDraft::diff(a.old, &a.site.draft).to_string());
            at.push(a.site.updated_at);
        }
        sqlx::query(
            "INSERT INTO site_audit (site_id, user_id, version, action, changes, at) \
             SELECT site_id, user_id, version, action, changes::jsonb, at \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
             $6::timestamptz[]) AS x(site_id, user_id, version, action, changes, at)",
        )
        .bind(site)
        .bind(user)
        .bind(version)
        .bind(action)
        .bind(changes)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Append the sites' changes to the feed and wake the other nodes: the last
/// statement of a site-writing transaction. Moving the counter takes its
/// row's lock, held until commit, so positions are handed out in commit order.
async fn record_changes(
    tx: &mut Transaction<'static, Postgres>,
    sites: &[&Site],
) -> Result<(), StoreError> {
    if sites.is_empty() {
        return Ok(());
    }
    let mut site = Vec::with_capacity(sites.len());
    let mut op = Vec::with_capacity(sites.len());
    let mut version = Vec::with_capacity(sites.len());
    let mut at = Vec::with_capacity(sites.len());
    for s in sites {
        site.push(s.id.as_i64());
        op.push(
            if s.draft.status == Status::Retired {
                "retire"
            } else {
                "upsert"
            }
            .to_owned(),
        );
        version.push(s.version);
        at.push(s.updated_at);
    }
    sqlx::query(
        "WITH c AS (UPDATE site_feed_counter SET last_seq = last_seq + cardinality($1::bigint[]) \
         RETURNING last_seq), \
         ins AS (INSERT INTO site_changes (seq, site_id, op, version, at) \
         SELECT c.last_seq - cardinality($1::bigint[]) + x.ord, x.site_id, x.op, x.version, x.at \
         FROM c, unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[]) \
         WITH ORDINALITY AS x(site_id, op, version, at, ord)) \
         SELECT pg_notify($5, last_seq::text) FROM c",
    )
    .bind(site)
    .bind(op)
    .bind(version)
    .bind(at)
    .bind(CHANGES_CHANNEL)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Upsert by ref inside the caller's transaction, in a few bulk statements.
async fn import_in(
    tx: &mut Transaction<'static, Postgres>,
    drafts: Vec<SiteDraft>,
    at: DateTime<Utc>,
    progress: Progress<'_>,
) -> Result<ImportOutcome, StoreError> {
    let at = micros(at);
    let mut refs = Vec::with_capacity(drafts.len());
    for d in &drafts {
        match &d.ext_ref {
            Some(r) => refs.push(r.clone()),
            None => return Err(StoreError::Corrupt("import draft without ref".into())),
        }
    }
    let sql = format!(
        "SELECT {} FROM sites s WHERE s.ext_ref = ANY($1)",
        site_columns("s")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(&refs)
        .fetch_all(&mut **tx)
        .await?;
    let mut existing = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        let s = site_from_row(r)?;
        existing.insert(s.draft.ext_ref.clone().unwrap_or_default(), s);
    }
    let (out, olds) = plan_import(drafts, existing, at)?;
    let changed: Vec<&Site> = out.changed.iter().collect();
    // One row per site in a statement: the last version of a site named twice.
    let last: std::collections::HashMap<SiteId, usize> =
        changed.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let latest: Vec<&Site> = changed
        .iter()
        .enumerate()
        .filter(|(i, s)| last[&s.id] == *i)
        .map(|(_, s)| *s)
        .collect();
    write_sites(tx, &latest).await?;
    progress(latest.len() as u64);
    let audits: Vec<Audit> = out
        .changed
        .iter()
        .zip(&olds)
        .map(|(site, old)| Audit {
            site,
            old: old.as_ref(),
            actor: None,
        })
        .collect();
    record_audits(tx, &audits).await?;
    record_changes(tx, &changed).await?;
    Ok(out)
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let probe = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT max(version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&self.pool);
        let applied = tokio::time::timeout(Duration::from_secs(3), probe)
            .await
            .map_err(|_| StoreError::Busy("the readiness probe timed out".into()))??;
        if applied.unwrap_or(0) < self.latest_migration {
            return Err(StoreError::Migrate(
                format!(
                    "migrations pending: the database is at {}, this build needs {}",
                    applied.unwrap_or(0),
                    self.latest_migration
                )
                .into(),
            ));
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        Ok(Box::new(PgTx(self.write_tx().await?)))
    }

    async fn wait_for_change(&self) {
        self.changed.notified().await
    }
}

#[async_trait]
impl SiteStore for PgStore {
    async fn each_site(&self, f: &mut (dyn FnMut(Site) + Send)) -> Result<(), StoreError> {
        // Row by row: a million rows held at once cost gigabytes, and sites
        // held until the index was built left holes the allocator kept.
        let sql = format!("SELECT {} FROM sites s ORDER BY s.id", site_columns("s"));
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            f(site_from_row(&row)?);
        }
        Ok(())
    }

    async fn get_site(&self, id: SiteId) -> Result<Option<Site>, StoreError> {
        let sql = format!("SELECT {} FROM sites s WHERE s.id = $1", site_columns("s"));
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    async fn count_sites(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sites")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn storage_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn seed_sites(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
    ) -> Result<Option<ImportOutcome>, StoreError> {
        // No bound on the wait: a node starting beside one that is seeding
        // waits for it, then finds the registry full.
        let mut tx = self
            .write_tx_bounded(Duration::ZERO, Duration::ZERO)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(lock_ns::SEED)
            .execute(&mut *tx)
            .await?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sites)")
            .fetch_one(&mut *tx)
            .await?;
        if any {
            return Ok(None);
        }
        let out = import_in(&mut tx, drafts, at, &|_| ()).await?;
        commit(tx).await?;
        Ok(Some(out))
    }

    async fn import_sites_with_progress(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
        progress: Progress<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.write_tx().await?;
        let out = import_in(&mut tx, drafts, at, progress).await?;
        commit(tx).await?;
        Ok(out)
    }

    async fn last_change_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT last_seq FROM site_feed_counter")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let sql = format!(
            "SELECT c.seq AS seq, {} FROM site_changes c JOIN sites s ON s.id = c.site_id \
             WHERE c.seq > $1 ORDER BY c.seq LIMIT $2",
            site_columns("s")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Change {
                    seq: r.try_get("seq")?,
                    site: site_from_row(r)?,
                })
            })
            .collect()
    }

    async fn search_sites(&self, terms: &[String], limit: i64) -> Result<Vec<SiteId>, StoreError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Every term must occur in the name or the address.
        let cond: Vec<String> = (1..=terms.len())
            .map(|i| format!("(name ILIKE ${i} ESCAPE '\\' OR address ILIKE ${i} ESCAPE '\\')"))
            .collect();
        let sql = format!(
            "SELECT id FROM sites WHERE status <> 'retired' AND {} LIMIT ${}",
            cond.join(" AND "),
            terms.len() + 1
        );
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
        for t in terms {
            q = q.bind(format!("%{}%", like_escape(t)));
        }
        let ids = q.bind(limit).fetch_all(&self.pool).await?;
        Ok(ids.into_iter().filter_map(SiteId::from_i64).collect())
    }

    async fn create_site(
        &self,
        draft: SiteDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Site, StoreError> {
        let mut tx = self.write_tx().await?;
        let site = Site {
            id: SiteId::random(),
            draft,
            version: 1,
            updated_at: micros(at),
        };
        write_sites(&mut tx, &[&site]).await?;
        record_audits(
            &mut tx,
            &[Audit {
                site: &site,
                old: None,
                actor,
            }],
        )
        .await?;
        record_changes(&mut tx, &[&site]).await?;
        commit(tx).await?;
        Ok(site)
    }

    async fn update_site(
        &self,
        id: SiteId,
        expected_version: i64,
        draft: SiteDraft,
        actor: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<Site, StoreError> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT {} FROM sites s WHERE s.id = $1 FOR UPDATE",
            site_columns("s")
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_i64())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let old = site_from_row(&row)?;
        if old.version != expected_version {
            return Err(StoreError::Conflict {
                current: old.version,
            });
        }
        if old.draft == draft {
            return Ok(old);
        }
        let site = Site {
            id,
            draft,
            version: old.version + 1,
            updated_at: micros(at),
        };
        write_sites(&mut tx, &[&site]).await?;
        record_audits(
            &mut tx,
            &[Audit {
                site: &site,
                old: Some(&old.draft),
                actor,
            }],
        )
        .await?;
        // Followers hear of closures, reopenings and new hours, in this transaction
        // (before the feed counter, which must stay its last statement).
        let followers: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM follows WHERE site_id = $1")
                .bind(id.as_i64())
                .fetch_all(&mut *tx)
                .await?;
        for user in followers {
            if let Some(n) =
                crate::domain::notify::for_site_change(user, &old, &site, site.updated_at)
            {
                super::postgres_notify::insert_notice(&mut tx, &n).await?;
            }
        }
        record_changes(&mut tx, &[&site]).await?;
        commit(tx).await?;
        Ok(site)
    }

    async fn site_history(&self, id: SiteId) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, version, action, changes::text AS changes, at FROM site_audit \
             WHERE site_id = $1 ORDER BY id",
        )
        .bind(id.as_i64())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let changes: String = r.try_get("changes")?;
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    user_id: r.try_get("user_id")?,
                    version: r.try_get("version")?,
                    action: r.try_get("action")?,
                    changes: serde_json::from_str(&changes)
                        .map_err(|e| corrupt("audit changes", e))?,
                })
            })
            .collect()
    }
}

/// A user with their sites, in one statement.
const USER_SELECT: &str = "SELECT u.id, u.phone, u.role, u.display_name, u.gender, u.birth_year, \
     u.marital_status, u.union_member_no, u.employer, u.frontline, \
     ARRAY(SELECT us.site_id FROM user_sites us WHERE us.user_id = u.id ORDER BY us.site_id) AS sites, \
     ARRAY(SELECT uu.union_id FROM user_unions uu WHERE uu.user_id = u.id ORDER BY uu.union_id) AS unions \
     FROM users u";

fn user_from_row(r: &PgRow) -> Result<User, StoreError> {
    <super::UserRow as sqlx::FromRow<_>>::from_row(r)?
        .into_user(r.try_get("sites")?, r.try_get("unions")?)
}

#[async_trait]
impl AccountStore for PgStore {
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{USER_SELECT} WHERE u.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_phone(&self, phone: &Phone) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("{USER_SELECT} WHERE u.phone = $1")))
            .bind(phone.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn put_user(
        &self,
        phone: &Phone,
        role: Role,
        sites: &[SiteId],
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (phone, role, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (phone) DO UPDATE SET role = excluded.role RETURNING id",
        )
        .bind(phone.as_str())
        .bind(role.as_str())
        .bind(micros(at))
        .fetch_one(&mut *tx)
        .await?;
        for table in ["user_sites", "user_unions"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if !sites.is_empty() {
            let ids: Vec<i64> = sites.iter().map(|s| s.as_i64()).collect();
            sqlx::query(
                "INSERT INTO user_sites (user_id, site_id) SELECT $1, s FROM unnest($2::bigint[]) \
                 AS s ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(ids)
            .execute(&mut *tx)
            .await?;
        }
        commit(tx).await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn sign_in_user(&self, phone: &Phone, at: DateTime<Utc>) -> Result<User, StoreError> {
        sqlx::query(
            "INSERT INTO users (phone, role, created_at) VALUES ($1, 'worker', $2) \
             ON CONFLICT (phone) DO NOTHING",
        )
        .bind(phone.as_str())
        .bind(micros(at))
        .execute(&self.pool)
        .await?;
        self.user_by_phone(phone).await?.ok_or(StoreError::NotFound)
    }

    async fn set_profile(&self, id: UserId, p: &Profile) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET display_name = $1, gender = $2, birth_year = $3, \
             marital_status = $4, union_member_no = $5, employer = $6, frontline = $7 \
             WHERE id = $8",
        )
        .bind(p.display_name.clone())
        .bind(p.gender.map(|g| g.as_str()))
        .bind(p.birth_year)
        .bind(p.marital_status.map(|m| m.as_str()))
        .bind(p.union_member_no.clone())
        .bind(p.employer.clone())
        .bind(p.frontline)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_token(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tokens (hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(user)
            .bind(secs(expires_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_users(
        &self,
        token_hashes: &[String],
    ) -> Result<Vec<(String, DateTime<Utc>, User)>, StoreError> {
        let sql = format!(
            "{} JOIN tokens t ON t.user_id = u.id WHERE t.hash = ANY($1) AND NOT t.revoked",
            USER_SELECT.replacen(
                "SELECT ",
                "SELECT t.hash AS token_hash, t.expires_at AS token_expires, ",
                1
            )
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(token_hashes)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("token_hash")?,
                    r.try_get("token_expires")?,
                    user_from_row(r)?,
                ))
            })
            .collect()
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET revoked = true WHERE hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_follow(
        &self,
        user: UserId,
        site: SiteId,
        follow: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let q = if follow {
            sqlx::query(
                "INSERT INTO follows (user_id, site_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(user)
            .bind(site.as_i64())
            .bind(micros(at))
        } else {
            sqlx::query("DELETE FROM follows WHERE user_id = $1 AND site_id = $2")
                .bind(user)
                .bind(site.as_i64())
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn follows(&self, user: UserId) -> Result<Vec<SiteId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT site_id FROM follows WHERE user_id = $1 ORDER BY created_at, site_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().filter_map(SiteId::from_i64).collect())
    }

    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        // Read first: only the first start of a new database writes.
        let kept: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(value) = kept {
            return Ok(value);
        }
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(fresh.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// yizhan answers 201 once its transaction commits, and assumes that a commit
/// is then on disk: the cluster's `fsync`, `full_page_writes` and
/// `synchronous_commit` as PostgreSQL ships them. They are the operator's to
/// set (a cluster may rightly use `remote_apply` with a synchronous standby),
/// so yizhan does not override them; it says at start when one of them lets a
/// confirmed booking be lost in a crash of the database server.
async fn warn_if_not_durable(pool: &PgPool) -> Result<(), StoreError> {
    let (fsync, full_page_writes, synchronous_commit): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('fsync'), current_setting('full_page_writes'), \
         current_setting('synchronous_commit')",
    )
    .fetch_one(pool)
    .await?;
    if fsync == "off" || full_page_writes == "off" || synchronous_commit == "off" {
        tracing::warn!(
            fsync,
            full_page_writes,
            synchronous_commit,
            "PostgreSQL is not durable: bookings answered 201 may be lost if the database \
             server crashes (set fsync, full_page_writes and synchronous_commit on)"
        );
    }
    Ok(())
}

super::sms::sms_store!(PgStore, super::micros);
super::wechat::wechat_store!(PgStore);
super::draws::draw_store!(PgStore, super::postgres_events::PgTx, super::micros);
super::draws::draw_tx!(super::postgres_events::PgTx, USER_SELECT, user_from_row);
