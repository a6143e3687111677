//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes take the write lock up front (`BEGIN IMMEDIATE`) so two writers never
//! deadlock upgrading from a read; `synchronous = FULL` because a confirmed write
//! must survive a power cut, not just a crash of this process.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{Change, ImportOutcome, Store, StoreError};
use crate::domain::site::{AmenitySet, Site, SiteDraft, SiteId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

const SITE_COLUMNS: &str = "id, ext_ref, kind, name, address, adcode, lat, lon, amenities, \
     opening_hours, phone, photos, status, version, updated_at";

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
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
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn now() -> DateTime<Utc> {
    // Stored with microsecond precision; truncate here so the value we return
    // equals the value we read back.
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn fmt_time(t: DateTime<Utc>) -> String {
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

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn site_from_row(row: &SqliteRow) -> Result<Site, StoreError> {
    let id: i64 = row.try_get("id")?;
    let photos: String = row.try_get("photos")?;
    let updated_at: String = row.try_get("updated_at")?;
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
        },
        version: row.try_get("version")?,
        updated_at: DateTime::parse_from_rfc3339(&updated_at)
            .map_err(|e| corrupt("updated_at", e))?
            .with_timezone(&Utc),
    })
}

/// Insert a new site or overwrite a stored one (same id) with its next version.
async fn write_site(tx: &mut Transaction<'static, Sqlite>, site: &Site) -> Result<(), StoreError> {
    let d = &site.draft;
    sqlx::query(
        "INSERT INTO sites (id, ext_ref, kind, name, address, adcode, lat, lon, amenities, \
         opening_hours, phone, photos, status, version, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET ext_ref = excluded.ext_ref, kind = excluded.kind, \
         name = excluded.name, address = excluded.address, adcode = excluded.adcode, \
         lat = excluded.lat, lon = excluded.lon, amenities = excluded.amenities, \
         opening_hours = excluded.opening_hours, phone = excluded.phone, \
         photos = excluded.photos, status = excluded.status, version = excluded.version, \
         updated_at = excluded.updated_at",
    )
    .bind(site.id.as_i64())
    .bind(d.ext_ref.clone())
    .bind(d.kind.as_str())
    .bind(d.name.clone())
    .bind(d.address.clone())
    .bind(d.adcode.as_str().to_owned())
    .bind(d.lat)
    .bind(d.lon)
    .bind(i64::from(d.amenities.bits()))
    .bind(d.opening_hours.clone())
    .bind(d.phone.clone())
    .bind(serde_json::to_string(&d.photos).expect("strings serialize"))
    .bind(d.status.as_str())
    .bind(site.version)
    .bind(fmt_time(site.updated_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keep the search table in step with the site, inside the caller's transaction.
async fn index_for_search(
    tx: &mut Transaction<'static, Sqlite>,
    site: &Site,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM site_search WHERE rowid = ?")
        .bind(site.id.as_i64())
        .execute(&mut **tx)
        .await?;
    if site.draft.status != crate::domain::site::Status::Retired {
        sqlx::query("INSERT INTO site_search (rowid, name, address) VALUES (?, ?, ?)")
            .bind(site.id.as_i64())
            .bind(site.draft.name.clone())
            .bind(site.draft.address.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Append to the change feed, inside the caller's transaction.
async fn record_change(
    tx: &mut Transaction<'static, Sqlite>,
    site: &Site,
) -> Result<(), StoreError> {
    let op = if site.draft.status == crate::domain::site::Status::Retired {
        "retire"
    } else {
        "upsert"
    };
    sqlx::query("INSERT INTO site_changes (site_id, op, version, at) VALUES (?, ?, ?, ?)")
        .bind(site.id.as_i64())
        .bind(op)
        .bind(site.version)
        .bind(fmt_time(site.updated_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn all_sites(&self) -> Result<Vec<Site>, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(site_from_row).collect()
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

    async fn import_sites(&self, drafts: Vec<SiteDraft>) -> Result<ImportOutcome, StoreError> {
        let mut out = ImportOutcome::default();
        let mut tx = self.write_tx().await?;
        let select = format!("SELECT {SITE_COLUMNS} FROM sites WHERE ext_ref = ?");
        let at = now();
        for draft in drafts {
            let Some(ext_ref) = draft.ext_ref.clone() else {
                return Err(StoreError::Corrupt("import draft without ref".into()));
            };
            let existing = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                .bind(ext_ref)
                .fetch_optional(&mut *tx)
                .await?;
            let site = match existing.as_ref().map(site_from_row).transpose()? {
                Some(old) if old.draft == draft => {
                    out.unchanged += 1;
                    continue;
                }
                Some(old) => {
                    let site = Site {
                        id: old.id,
                        draft,
                        version: old.version + 1,
                        updated_at: at,
                    };
                    write_site(&mut tx, &site).await?;
                    out.updated += 1;
                    site
                }
                None => {
                    let site = Site {
                        id: SiteId::random(),
                        draft,
                        version: 1,
                        updated_at: at,
                    };
                    write_site(&mut tx, &site).await?;
                    out.created += 1;
                    site
                }
            };
            index_for_search(&mut tx, &site).await?;
            record_change(&mut tx, &site).await?;
            out.changed.push(site);
        }
        tx.commit().await?;
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

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
