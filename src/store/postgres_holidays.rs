//! The holiday calendar on PostgreSQL, as on SQLite (`sqlite_holidays.rs`):
//! `holiday_years` with the revision each year was last written at, and
//! `holiday_days`. Writes hold a transaction-scoped advisory lock, so
//! revisions move one at a time and nodes seeding at once cannot interleave.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::StoreError;
use super::holidays::{HolidayStore, HolidayYearInfo, PutHolidays, YearChange, assemble_years};
use super::micros;
use super::postgres::PgStore;
use crate::domain::calendar::{HolidayCalendar, HolidayYear};

/// `pg_advisory_xact_lock(LOCK_NS, 0)` serialises calendar writes.
const LOCK_NS: i32 = 6;

async fn lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_NS)
        .execute(conn)
        .await?;
    Ok(())
}

/// The stored years (all, or only `only`), validated again on the way out.
async fn read_years(
    conn: &mut PgConnection,
    only: Option<i32>,
) -> Result<Vec<HolidayYear>, StoreError> {
    let years: Vec<(i32, String)> = sqlx::query_as("SELECT year, source FROM holiday_years WHERE $1::integer IS NULL OR year = $1 ORDER BY year")
        .bind(only)
        .fetch_all(&mut *conn)
        .await?;
    let days: Vec<(String, i32, String, String)> = sqlx::query_as("SELECT date::text AS date, year, kind, name FROM holiday_days WHERE $1::integer IS NULL OR year = $1 ORDER BY date")
        .bind(only)
        .fetch_all(&mut *conn)
        .await?;
    assemble_years(years, days)
}

async fn max_revision(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0)::bigint FROM holiday_years")
            .fetch_one(conn)
            .await?,
    )
}

/// Insert or overwrite the year's row, then its days.
async fn write_year(
    conn: &mut PgConnection,
    y: &HolidayYear,
    revision: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO holiday_years (year, source, revision, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (year) DO UPDATE SET source = excluded.source, \
         revision = excluded.revision, updated_at = excluded.updated_at",
    )
    .bind(y.year())
    .bind(y.source())
    .bind(revision)
    .bind(micros(at))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM holiday_days WHERE year = $1")
        .bind(y.year())
        .execute(&mut *conn)
        .await?;
    for (kind, days) in [
        ("holiday", y.holidays()),
        ("makeup_workday", y.makeup_workdays()),
    ] {
        for d in days {
            sqlx::query(
                "INSERT INTO holiday_days (date, year, kind, name) VALUES ($1::date, $2, $3, $4)",
            )
            .bind(d.date.format("%Y-%m-%d").to_string())
            .bind(y.year())
            .bind(kind)
            .bind(&d.name)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

#[async_trait]
impl HolidayStore for PgStore {
    async fn holiday_years(&self) -> Result<Vec<HolidayYearInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT y.year, y.source, y.revision, y.updated_at, \
             count(d.date) FILTER (WHERE d.kind = 'holiday') AS holidays, \
             count(d.date) FILTER (WHERE d.kind = 'makeup_workday') AS makeup_workdays \
             FROM holiday_years y LEFT JOIN holiday_days d ON d.year = y.year \
             GROUP BY y.year ORDER BY y.year",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let holidays: i64 = r.try_get("holidays")?;
                let makeup: i64 = r.try_get("makeup_workdays")?;
                Ok(HolidayYearInfo {
                    year: r.try_get("year")?,
                    source: r.try_get("source")?,
                    holidays: holidays as usize,
                    makeup_workdays: makeup as usize,
                    revision: r.try_get("revision")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn holiday_year(&self, year: i32) -> Result<Option<HolidayYear>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(read_years(&mut conn, Some(year)).await?.pop())
    }

    async fn holiday_calendar(&self) -> Result<HolidayCalendar, StoreError> {
        // One snapshot for the revision and the years.
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let revision = max_revision(&mut tx).await?;
        let years = read_years(&mut tx, None).await?;
        tx.commit().await?;
        Ok(HolidayCalendar::new(years, revision))
    }

    async fn put_holiday_years(
        &self,
        years: &[HolidayYear],
        at: DateTime<Utc>,
    ) -> Result<PutHolidays, StoreError> {
        let mut tx = self.write_tx().await?;
        lock(&mut tx).await?;
        let revision = max_revision(&mut tx).await? + 1;
        let mut out = Vec::with_capacity(years.len());
        for y in years {
            let stored = read_years(&mut tx, Some(y.year())).await?.pop();
            let change = match stored {
                Some(s) if &s == y => YearChange::Unchanged,
                Some(_) => YearChange::Replaced,
                None => YearChange::Added,
            };
            if change != YearChange::Unchanged {
                write_year(&mut tx, y, revision, at).await?;
            }
            out.push((y.year(), change));
        }
        tx.commit().await?;
        let wrote = out.iter().any(|(_, c)| *c != YearChange::Unchanged);
        Ok(PutHolidays {
            revision: if wrote { revision } else { revision - 1 },
            years: out,
        })
    }

    async fn seed_holiday_years(
        &self,
        years: &[HolidayYear],
        at: DateTime<Utc>,
    ) -> Result<Vec<i32>, StoreError> {
        let mut tx = self.write_tx().await?;
        lock(&mut tx).await?;
        let revision = max_revision(&mut tx).await? + 1;
        let mut added = Vec::new();
        for y in years {
            let inserted = sqlx::query(
                "INSERT INTO holiday_years (year, source, revision, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (year) DO NOTHING",
            )
            .bind(y.year())
            .bind(y.source())
            .bind(revision)
            .bind(micros(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                write_year(&mut tx, y, revision, at).await?;
                added.push(y.year());
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn holiday_revision(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        max_revision(&mut conn).await
    }
}
