//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes take the write lock up front (`BEGIN IMMEDIATE`) so two writers never
//! deadlock upgrading from a read; `synchronous = FULL` by default because a
//! confirmed write must survive a power cut, not just a crash of this process
//! (`--sqlite-synchronous normal` trades that for commits without an fsync:
//! see docs/durability.md).

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::sqlite_events::SqliteTx;
use super::{
    AccountStore, AuditEntry, Change, ImportOutcome, Progress, SiteStore, Store, StoreError,
    WriteTx, micros, plan_import,
};
use crate::domain::site::{
    AmenitySet, ClosureInfo, Site, SiteDraft, SiteId, SiteRecord, SiteView, Status,
};
use crate::domain::union::UnionId;
use crate::domain::user::{Phone, Profile, Role, User, UserId};

/// Driver errors become the contract's: a unique-key violation is `Duplicate`,
/// anything else an opaque `Database` error.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Duplicate(d.message().to_owned())
            }
            // PostgreSQL: lock_not_available (lock_timeout), query_canceled
            // (statement_timeout), deadlock and serialization failures: retry later.
            sqlx::Error::Database(d)
                if matches!(
                    d.code().as_deref(),
                    Some("55P03" | "57014" | "40P01" | "40001")
                ) =>
            {
                StoreError::Busy(Box::new(sqlx::Error::Database(d)))
            }
            e @ sqlx::Error::PoolTimedOut => StoreError::Busy(Box::new(e)),
            e => StoreError::Database(Box::new(e)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Migrate(Box::new(e))
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

/// A site's columns, in the order [`site_from_row_at`] reads them by position.
const SITE_COLUMNS: &str = "id, ext_ref, kind, name, address, adcode, lat, lon, amenities, \
     opening_hours, phone, photos, status, version, updated_at, status_reason, reopens_at, closures, \
     union_id";

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::connect_with(url, super::SqliteSync::Full).await
    }

    /// Open with `sync` as SQLite's `synchronous` setting.
    pub async fn connect_with(
        url: &str,
        sync: super::SqliteSync,
    ) -> Result<SqliteStore, StoreError> {
        let synchronous = match sync {
            super::SqliteSync::Full => SqliteSynchronous::Full,
            super::SqliteSync::Normal => SqliteSynchronous::Normal,
        };
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // A fresh machine has no ./data/ yet: create the database's folder.
        if let Some(dir) = opts.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file on this machine: a connection does not go stale between
            // uses, and a ping per acquire was a round trip to SQLite's
            // thread per batch and per token query.
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// Every stored site, a chunk at a time ([`SITES_AS_JSON`]): a million
    /// rows held at once cost gigabytes, and sites held until the index was
    /// built left holes the allocator kept.
    async fn each_stored(
        &self,
        f: &mut (dyn for<'a> FnMut(StoredSite<'a>) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        const CHUNK: i64 = 10_000;
        let mut after = i64::MIN;
        loop {
            let json: String = sqlx::query_scalar(SITES_AS_JSON)
                .bind(after)
                .bind(CHUNK)
                .fetch_one(&self.pool)
                .await?;
            let rows: Vec<StoredSite<'_>> =
                serde_json::from_str(&json).map_err(|e| corrupt("sites", e))?;
            let Some(last) = rows.iter().map(|r| r.id).max() else {
                return Ok(());
            };
            after = last;
            for row in rows {
                f(row)?;
            }
        }
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
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

pub(super) use super::corrupt;

fn site_from_row(row: &SqliteRow) -> Result<Site, StoreError> {
    site_from_row_at(row, 0)
}

/// A site from [`SITE_COLUMNS`] starting at column `base`, read by position
/// (by name, each of the 19 reads was a hash lookup: a million rows at start-up).
fn site_from_row_at(row: &SqliteRow, base: usize) -> Result<Site, StoreError> {
    let c = |i: usize| base + i;
    let photos: String = row.try_get(c(11))?;
    let closures: String = row.try_get(c(17))?;
    StoredSite {
        id: row.try_get(c(0))?,
        ext_ref: row.try_get::<Option<String>, _>(c(1))?.map(Cow::Owned),
        kind: Cow::Owned(row.try_get(c(2))?),
        name: Cow::Owned(row.try_get(c(3))?),
        address: Cow::Owned(row.try_get(c(4))?),
        adcode: Cow::Owned(row.try_get(c(5))?),
        lat: row.try_get(c(6))?,
        lon: row.try_get(c(7))?,
        amenities: row.try_get(c(8))?,
        opening_hours: Cow::Owned(row.try_get(c(9))?),
        phone: row.try_get::<Option<String>, _>(c(10))?.map(Cow::Owned),
        photos: if photos == "[]" {
            Vec::new()
        } else {
            serde_json::from_str::<Vec<String>>(&photos)
                .map_err(|e| corrupt("photos", e))?
                .into_iter()
                .map(Cow::Owned)
                .collect()
        },
        status: Cow::Owned(row.try_get(c(12))?),
        version: row.try_get(c(13))?,
        updated_at: Cow::Owned(row.try_get(c(14))?),
        status_reason: row.try_get::<Option<String>, _>(c(15))?.map(Cow::Owned),
        reopens_at: row.try_get::<Option<String>, _>(c(16))?.map(Cow::Owned),
        closures: if closures == "[]" {
            Vec::new()
        } else {
            serde_json::from_str(&closures).map_err(|e| corrupt("closures", e))?
        },
        union_id: row.try_get(c(18))?,
    }
    .to_site()
}

/// A `sites` row as stored, before its values are checked: read from a row
/// ([`site_from_row_at`]) or from the JSON of [`SITES_AS_JSON`].
#[derive(serde::Deserialize)]
struct StoredSite<'a> {
    id: i64,
    #[serde(borrow)]
    ext_ref: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    address: Cow<'a, str>,
    #[serde(borrow)]
    adcode: Cow<'a, str>,
    #[serde(deserialize_with = "exact_f64")]
    lat: f64,
    #[serde(deserialize_with = "exact_f64")]
    lon: f64,
    amenities: i64,
    #[serde(borrow)]
    opening_hours: Cow<'a, str>,
    #[serde(borrow)]
    phone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    photos: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    version: i64,
    #[serde(borrow)]
    updated_at: Cow<'a, str>,
    #[serde(borrow)]
    status_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reopens_at: Option<Cow<'a, str>>,
    closures: Vec<crate::domain::site::Closure>,
    union_id: Option<i64>,
}

/// A coordinate as [`SITES_AS_JSON`] writes it: 17 significant digits in a
/// string, which give back the stored double exactly (SQLite's JSON numbers
/// have 15).
fn exact_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let s: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl StoredSite<'_> {
    fn to_site(&self) -> Result<Site, StoreError> {
        let record = self.record()?;
        let (view, version) = (record.view, record.version);
        Ok(Site {
            id: view.id,
            draft: SiteDraft {
                ext_ref: view.ext_ref.map(str::to_owned),
                kind: view.kind,
                name: view.name.to_owned(),
                address: view.address.to_owned(),
                adcode: view.adcode,
                lat: view.lat,
                lon: view.lon,
                amenities: view.amenities,
                opening_hours: view.opening_hours.to_owned(),
                phone: view.phone.map(str::to_owned),
                photos: self.photos.iter().map(|p| p.to_string()).collect(),
                status: view.status,
                closure: ClosureInfo {
                    reason: self.status_reason.as_deref().map(str::to_owned),
                    reopens_at: self
                        .reopens_at
                        .as_deref()
                        .map(parse_time)
                        .transpose()
                        .map_err(|e| corrupt("reopens_at", e))?,
                    exceptions: record.exceptions,
                },
                union_id: self.union_id.and_then(UnionId::from_i64),
            },
            version,
            updated_at: parse_time(&self.updated_at).map_err(|e| corrupt("updated_at", e))?,
        })
    }

    /// The checked values the index takes, borrowed from the row.
    fn record(&self) -> Result<SiteRecord<'_>, StoreError> {
        Ok(SiteRecord {
            view: SiteView {
                id: SiteId::from_i64(self.id).ok_or_else(|| corrupt("id", self.id))?,
                ext_ref: self.ext_ref.as_deref(),
                kind: self.kind.parse().map_err(|e| corrupt("kind", e))?,
                name: &self.name,
                address: &self.address,
                adcode: self.adcode.parse().map_err(|e| corrupt("adcode", e))?,
                lat: self.lat,
                lon: self.lon,
                opening_hours: &self.opening_hours,
                amenities: AmenitySet::from_bits(self.amenities as u32),
                status: self.status.parse().map_err(|e| corrupt("status", e))?,
                phone: self.phone.as_deref(),
            },
            version: self.version,
            exceptions: self.closures.clone(),
        })
    }
}

/// Sites after an id, in id order, at most `?2`, as one JSON array of
/// [`StoredSite`] arrays made by SQLite: a whole chunk crosses from the
/// driver's thread in one hand-over. Row by row, the two threads woke each
/// other a million times at start-up, and that was most of its time.
const SITES_AS_JSON: &str = "SELECT json_group_array(json_array(id, ext_ref, kind, name, address, \
     adcode, printf('%!.17g', lat), printf('%!.17g', lon), amenities, opening_hours, phone, \
     json(photos), status, version, updated_at, status_reason, reopens_at, json(closures), \
     union_id)) FROM (SELECT * FROM sites WHERE id > ?1 ORDER BY id LIMIT ?2)";

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
}

/// The audit log's name for a write: `create`, `update` or `retire`.
fn audit_action(site: &Site, old: Option<&SiteDraft>) -> &'static str {
    match (old, site.draft.status) {
        (None, _) => "create",
        (Some(_), Status::Retired) => "retire",
        _ => "update",
    }
}

/// The change feed's name for a write: `upsert` or `retire`.
fn change_op(site: &Site) -> &'static str {
    if site.draft.status == Status::Retired {
        "retire"
    } else {
        "upsert"
    }
}

/// Refs looked up per statement (one bound value each; SQLite allows 32,766).
const REFS: usize = 1000;

/// Sites written per statement. A chunk's rows travel as one JSON array bound
/// to one parameter and are unpacked by `json_each` inside SQLite — the
/// embedded equivalent of PostgreSQL's `unnest` of arrays: binding 19 values
/// per row through the driver cost more than SQLite's own work.
const ROWS: usize = 4000;

/// Upsert by ref inside the caller's transaction: the stored sites the refs
/// name are read a chunk of refs at a time, the plan is made in memory
/// ([`plan_import`]), and its rows are written a statement per table per
/// [`ROWS`] sites, not five statements per site.
async fn import_in(
    tx: &mut Transaction<'static, Sqlite>,
    drafts: Vec<SiteDraft>,
    at: DateTime<Utc>,
    progress: Progress<'_>,
) -> Result<ImportOutcome, StoreError> {
    let mut existing = HashMap::new();
    for chunk in drafts.chunks(REFS) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE ext_ref IN ("
        ));
        let mut refs = q.separated(", ");
        for d in chunk {
            refs.push_bind(d.ext_ref.clone());
        }
        q.push(")");
        for row in q.build().fetch_all(&mut **tx).await? {
            let site = site_from_row(&row)?;
            existing.insert(site.draft.ext_ref.clone().unwrap_or_default(), site);
        }
    }
    let (mut out, olds) = plan_import(drafts, existing, at)?;
    // Written in id order (stable: a site named twice keeps its versions'
    // order): the tables' B-trees grow at their right edge, and FTS5 appends
    // to its pending doclists instead of flushing them whenever a rowid goes
    // back (in file order, ids are random: that flush was a third of the time).
    let changed = Arc::new(std::mem::take(&mut out.changed));
    let olds = Arc::new(olds);
    let mut order: Vec<usize> = (0..changed.len()).collect();
    order.sort_by_key(|&i| changed[i].id);
    let order = Arc::new(order);
    // A chunk's rows (JSON, audit diffs) are made on a blocking thread while
    // SQLite's thread writes the chunk before.
    let rows_of = |from: usize| {
        let (changed, olds, order) = (changed.clone(), olds.clone(), order.clone());
        tokio::task::spawn_blocking(move || {
            let to = (from + ROWS).min(order.len());
            let chunk: Vec<Written<'_>> = order[from..to]
                .iter()
                .map(|&i| (&changed[i], olds[i].as_ref()))
                .collect();
            ChunkRows::of(&chunk, None)
        })
    };
    let mut next = (!order.is_empty()).then(|| rows_of(0));
    let mut written = 0;
    while let Some(rows) = next.take() {
        let rows = rows
            .await
            .map_err(|e| StoreError::Corrupt(format!("preparing import rows: {e}")))?;
        written += rows.len;
        if written < order.len() {
            next = Some(rows_of(written));
        }
        rows.write(tx).await?;
        progress(written as u64);
    }
    drop(order);
    out.changed = Arc::try_unwrap(changed).unwrap_or_else(|shared| (*shared).clone());
    Ok(out)
}

/// A site as written by an import, with its content before (`None`: new).
type Written<'a> = (&'a Site, Option<&'a SiteDraft>);

/// One `sites` row as the JSON that `jsonb_each` unpacks.
#[derive(serde::Serialize)]
struct SiteRow<'a> {
    id: i64,
    ext_ref: Option<&'a str>,
    kind: &'static str,
    name: &'a str,
    address: &'a str,
    adcode: &'a str,
    lat: f64,
    lon: f64,
    amenities: u32,
    opening_hours: &'a str,
    phone: Option<&'a str>,
    photos: String,
    status: &'static str,
    version: i64,
    updated_at: String,
    status_reason: Option<&'a str>,
    reopens_at: Option<String>,
    closures: String,
    union_id: Option<i64>,
}

/// The rows as one JSON array (a bound parameter that `jsonb_each` unpacks).
fn json_rows<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> String {
    let rows: Vec<T> = rows.collect();
    serde_json::to_string(&rows).expect("rows serialise")
}

/// Sites written together, as the five JSON arrays their statements bind: the
/// row itself (inserted, or overwritten with its next version), its audit
/// entry, its search row (replaced; removed when retired) and its change-feed
/// entry. An import writes thousands at a time; a manager's edit, one.
struct ChunkRows {
    len: usize,
    sites: String,
    audits: String,
    stale: String,
    search: String,
    changes: String,
}

impl ChunkRows {
    /// `actor`: who made the change (`None`: an import).
    fn of(chunk: &[Written<'_>], actor: Option<UserId>) -> ChunkRows {
        let sites = json_rows(chunk.iter().map(|(site, _)| {
            let d = &site.draft;
            SiteRow {
                id: site.id.as_i64(),
                ext_ref: d.ext_ref.as_deref(),
                kind: d.kind.as_str(),
                name: &d.name,
                address: &d.address,
                adcode: d.adcode.as_str(),
                lat: d.lat,
                lon: d.lon,
                amenities: d.amenities.bits(),
                opening_hours: &d.opening_hours,
                phone: d.phone.as_deref(),
                photos: serde_json::to_string(&d.photos).expect("strings serialize"),
                status: d.status.as_str(),
                version: site.version,
                updated_at: fmt_time(site.updated_at),
                status_reason: d.closure.reason.as_deref(),
                reopens_at: d.closure.reopens_at.map(fmt_time),
                closures: serde_json::to_string(&d.closure.exceptions).expect("closures serialize"),
                union_id: d.union_id.map(UnionId::as_i64),
            }
        }));
        // The diff as a JSON value inside the row (`-> 3` stores its text),
        // not a string escaped inside another.
        let audits = json_rows(chunk.iter().map(|(site, old)| {
            (
                site.id.as_i64(),
                actor,
                site.version,
                audit_action(site, *old),
                SiteDraft::diff(*old, &site.draft),
                fmt_time(site.updated_at),
            )
        }));
        let stale = json_rows(
            chunk
                .iter()
                .filter(|(_, old)| old.is_some())
                .map(|(s, _)| s.id.as_i64()),
        );
        // Sorted by id: a site named twice is a run of equal ids, and the last
        // of the run is current; retired sites leave the search table.
        let search = json_rows(
            chunk
                .iter()
                .enumerate()
                .filter(|(i, (s, _))| {
                    chunk.get(i + 1).is_none_or(|(next, _)| next.id != s.id)
                        && s.draft.status != Status::Retired
                })
                .map(|(_, (s, _))| (s.id.as_i64(), &s.draft.name, &s.draft.address)),
        );
        let changes = json_rows(chunk.iter().map(|(s, _)| {
            (
                s.id.as_i64(),
                change_op(s),
                s.version,
                fmt_time(s.updated_at),
            )
        }));
        ChunkRows {
            len: chunk.len(),
            sites,
            audits,
            stale,
            search,
            changes,
        }
    }

    /// A statement per table. `WHERE true`: SQLite's grammar needs it
    /// before an upsert clause.
    async fn write(self, tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        let statements = [
            (
                "INSERT INTO sites (id, ext_ref, kind, name, address, adcode, lat, lon, amenities, \
                 opening_hours, phone, photos, status, version, updated_at, status_reason, \
                 reopens_at, closures, union_id) \
                 SELECT value ->> 'id', value ->> 'ext_ref', value ->> 'kind', value ->> 'name', \
                 value ->> 'address', value ->> 'adcode', value ->> 'lat', value ->> 'lon', \
                 value ->> 'amenities', value ->> 'opening_hours', value ->> 'phone', \
                 value ->> 'photos', value ->> 'status', value ->> 'version', \
                 value ->> 'updated_at', value ->> 'status_reason', value ->> 'reopens_at', \
                 value ->> 'closures', value ->> 'union_id' \
                 FROM jsonb_each(?) WHERE true \
                 ON CONFLICT (id) DO UPDATE SET ext_ref = excluded.ext_ref, \
                 kind = excluded.kind, name = excluded.name, address = excluded.address, \
                 adcode = excluded.adcode, lat = excluded.lat, lon = excluded.lon, \
                 amenities = excluded.amenities, opening_hours = excluded.opening_hours, \
                 phone = excluded.phone, photos = excluded.photos, status = excluded.status, \
                 version = excluded.version, updated_at = excluded.updated_at, \
                 status_reason = excluded.status_reason, reopens_at = excluded.reopens_at, \
                 closures = excluded.closures, union_id = excluded.union_id",
                self.sites,
            ),
            (
                "INSERT INTO site_audit (site_id, user_id, version, action, changes, at) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
                 json(value -> 4), value ->> 5 FROM jsonb_each(?)",
                self.audits,
            ),
            (
                "DELETE FROM site_search WHERE rowid IN (SELECT value FROM jsonb_each(?))",
                self.stale,
            ),
            (
                "INSERT INTO site_search (rowid, name, address) \
                 SELECT value ->> 0, value ->> 1, value ->> 2 FROM jsonb_each(?)",
                self.search,
            ),
            (
                "INSERT INTO site_changes (site_id, op, version, at) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 \
                 FROM jsonb_each(?) ORDER BY key",
                self.changes,
            ),
        ];
        for (sql, rows) in statements {
            if rows != "[]" {
                sqlx::query(sql).bind(rows).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        Ok(Box::new(SqliteTx(self.write_tx().await?)))
    }
}

#[async_trait]
impl SiteStore for SqliteStore {
    async fn each_site(&self, f: &mut (dyn FnMut(Site) + Send)) -> Result<(), StoreError> {
        self.each_stored(&mut |row| {
            f(row.to_site()?);
            Ok(())
        })
        .await
    }

    async fn each_site_record(
        &self,
        f: &mut (dyn for<'a> FnMut(SiteRecord<'a>) + Send),
    ) -> Result<(), StoreError> {
        self.each_stored(&mut |row| {
            f(row.record()?);
            Ok(())
        })
        .await
    }

    async fn get_site(&self, id: SiteId) -> Result<Option<Site>, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
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
        let n: i64 = sqlx::query_scalar(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    async fn seed_sites(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
    ) -> Result<Option<ImportOutcome>, StoreError> {
        // BEGIN IMMEDIATE: the check and the import hold the write lock together.
        let mut tx = self.write_tx().await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sites")
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Ok(None);
        }
        let out = import_in(&mut tx, drafts, at, &|_| ()).await?;
        tx.commit().await?;
        Ok(Some(out))
    }

    async fn import_sites_with_progress(
        &self,
        drafts: Vec<SiteDraft>,
        at: DateTime<Utc>,
        progress: Progress<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.write_tx().await?;
        // A page cache the size of a large import's working set for this
        // transaction, so pages are not spilled to the WAL and read back
        // before the commit; the connection's default (2 MB) afterwards.
        sqlx::query("PRAGMA cache_size = -262144")
            .execute(&mut *tx)
            .await?;
        let out = import_in(&mut tx, drafts, at, progress).await;
        let reset = sqlx::query("PRAGMA cache_size = -2000")
            .execute(&mut *tx)
            .await;
        let out = out?;
        reset?;
        tx.commit().await?;
        // A large import leaves the WAL as large as the data it wrote; copy
        // it into the database file now, or every reader pays to look pages
        // up in it (a node starting on 2,000,000 freshly imported sites took
        // three times as long). Best effort: a busy reader only delays it.
        if out.created + out.updated > 10_000 {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(out)
    }

    async fn last_change_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM site_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let sql = format!(
            "SELECT c.seq AS seq, {} FROM site_changes c JOIN sites s ON s.id = c.site_id \
             WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            SITE_COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Change {
                    seq: r.try_get("seq")?,
                    site: site_from_row_at(r, 1)?,
                })
            })
            .collect()
    }

    async fn search_sites(&self, terms: &[String], limit: i64) -> Result<Vec<SiteId>, StoreError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Every term must occur in the name or the address.
        let cond = vec!["(name LIKE ? ESCAPE '\\' OR address LIKE ? ESCAPE '\\')"; terms.len()]
            .join(" AND ");
        let sql = format!("SELECT rowid FROM site_search WHERE {cond} LIMIT ?");
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for t in terms {
            let pattern = format!("%{}%", like_escape(t));
            q = q.bind(pattern.clone()).bind(pattern);
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
        ChunkRows::of(&[(&site, None)], actor)
            .write(&mut tx)
            .await?;
        tx.commit().await?;
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
        let select = format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(select))
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
        ChunkRows::of(&[(&site, Some(&old.draft))], actor)
            .write(&mut tx)
            .await?;
        // Followers hear of closures, reopenings and new hours, in this transaction.
        let followers: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM follows WHERE site_id = ?")
                .bind(id.as_i64())
                .fetch_all(&mut *tx)
                .await?;
        for user in followers {
            if let Some(n) =
                crate::domain::notify::for_site_change(user, &old, &site, site.updated_at)
            {
                super::sqlite_notify::insert_notice(&mut tx, &n).await?;
            }
        }
        tx.commit().await?;
        Ok(site)
    }

    async fn site_history(&self, id: SiteId) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT user_id, version, action, changes, at FROM site_audit WHERE site_id = ? ORDER BY id")
            .bind(id.as_i64())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let changes: String = r.try_get("changes")?;
                let at: String = r.try_get("at")?;
                Ok(AuditEntry {
                    at: parse_time(&at).map_err(|e| corrupt("audit at", e))?,
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

#[async_trait]
impl AccountStore for SqliteStore {
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} WHERE u.id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_phone(&self, phone: &Phone) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{USER_SELECT} WHERE u.phone = ?"
        )))
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
            "INSERT INTO users (phone, role, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (phone) DO UPDATE SET role = excluded.role RETURNING id",
        )
        .bind(phone.as_str())
        .bind(role.as_str())
        .bind(fmt_time(at))
        .fetch_one(&mut *tx)
        .await?;
        for table in ["user_sites", "user_unions"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = ?"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for s in sites {
            sqlx::query("INSERT OR IGNORE INTO user_sites (user_id, site_id) VALUES (?, ?)")
                .bind(id)
                .bind(s.as_i64())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn sign_in_user(&self, phone: &Phone, at: DateTime<Utc>) -> Result<User, StoreError> {
        sqlx::query("INSERT INTO users (phone, role, created_at) VALUES (?, 'worker', ?) ON CONFLICT (phone) DO NOTHING")
            .bind(phone.as_str())
            .bind(fmt_time(at))
            .execute(&self.pool)
            .await?;
        self.user_by_phone(phone).await?.ok_or(StoreError::NotFound)
    }

    async fn set_profile(&self, id: UserId, p: &Profile) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET display_name = ?, gender = ?, birth_year = ?, marital_status = ?, \
             union_member_no = ?, employer = ?, frontline = ? WHERE id = ?",
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
        sqlx::query("INSERT INTO tokens (hash, user_id, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(user)
            .bind(expires_at.timestamp())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_users(
        &self,
        token_hashes: &[String],
    ) -> Result<Vec<(String, DateTime<Utc>, User)>, StoreError> {
        let sql = format!(
            "{} JOIN tokens t ON t.user_id = u.id \
             WHERE t.hash IN (SELECT value FROM json_each(?)) AND t.revoked = 0",
            USER_SELECT.replacen(
                "SELECT ",
                "SELECT t.hash AS token_hash, t.expires_at AS token_expires, ",
                1
            )
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::to_string(token_hashes).expect("strings serialise"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let expires: i64 = r.try_get("token_expires")?;
                Ok((
                    r.try_get("token_hash")?,
                    DateTime::from_timestamp(expires, 0)
                        .ok_or_else(|| corrupt("token expires_at", expires))?,
                    user_from_row(r)?,
                ))
            })
            .collect()
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE hash = ?")
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
                "INSERT OR IGNORE INTO follows (user_id, site_id, created_at) VALUES (?, ?, ?)",
            )
            .bind(user)
            .bind(site.as_i64())
            .bind(fmt_time(at))
        } else {
            sqlx::query("DELETE FROM follows WHERE user_id = ? AND site_id = ?")
                .bind(user)
                .bind(site.as_i64())
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        // Read first: only the first start of a new database writes.
        let kept: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(value) = kept {
            return Ok(value);
        }
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)")
            .bind(name)
            .bind(fresh.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn follows(&self, user: UserId) -> Result<Vec<SiteId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT site_id FROM follows WHERE user_id = ? ORDER BY created_at, site_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().filter_map(SiteId::from_i64).collect())
    }
}

/// A user with their sites and unions, in one statement.
const USER_SELECT: &str = "SELECT u.id, u.phone, u.role, u.display_name, u.gender, u.birth_year, \
     u.marital_status, u.union_member_no, u.employer, u.frontline, \
     (SELECT json_group_array(site_id) FROM (SELECT site_id FROM user_sites WHERE user_id = u.id \
     ORDER BY site_id)) AS sites, \
     (SELECT json_group_array(union_id) FROM (SELECT union_id FROM user_unions WHERE user_id = u.id \
     ORDER BY union_id)) AS unions \
     FROM users u";

fn user_from_row(r: &SqliteRow) -> Result<User, StoreError> {
    let ids = |col: &str| -> Result<Vec<i64>, StoreError> {
        let json: String = r.try_get(col)?;
        serde_json::from_str(&json).map_err(|e| corrupt(col, e))
    };
    <super::UserRow as sqlx::FromRow<_>>::from_row(r)?.into_user(ids("sites")?, ids("unions")?)
}

super::sms::sms_store!(SqliteStore, |t: DateTime<Utc>| fmt_time(super::micros(t)));
super::wechat::wechat_store!(SqliteStore);
super::draws::draw_store!(SqliteStore, super::sqlite_events::SqliteTx, |t| fmt_time(
    super::micros(t)
));
super::draws::draw_tx!(super::sqlite_events::SqliteTx, USER_SELECT, user_from_row);
