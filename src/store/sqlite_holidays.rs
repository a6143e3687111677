//! The holiday calendar on SQLite: `holiday_years` (one row per year, with the revision it was
//! last written at) and `holiday_days`. Writes are one `BEGIN IMMEDIATE` transaction, so a file
//! of several years is all or nothing and two nodes seeding at once cannot interleave.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::StoreError;
use super::holidays::{HolidayStore, HolidayYearInfo, PutHolidays, YearChange, assemble_years};
use super::micros;
use super::sqlite::{SqliteStore, corrupt, fmt_time, parse_time};
use crate::domain::calendar::{HolidayCalendar, HolidayYear};

/// The stored years (all, or only `only`), validated again on the way out.
async fn read_years(
    conn: &mut SqliteConnection,
    only: Option<i32>,
) -> Result<Vec<HolidayYear>, StoreError> {
    let years: Vec<(i32, String)> = sqlx::query_as(
        "SELECT year, source FROM holiday_years WHERE ?1 IS NULL OR year = ?1 ORDER BY year",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let days: Vec<(String, i32, String, String)> = sqlx::query_as("SELECT date, year, kind, name FROM holiday_days WHERE ?1 IS NULL OR year = ?1 ORDER BY date")
        .bind(only)
        .fetch_all(&mut *conn)
        .await?;
    assemble_years(years, days)
}

async fn max_revision(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM holiday_years")
            .fetch_one(conn)
            .await?,
    )
}

/// Insert or overwrite the year's row, then its days.
async fn write_year(
    conn: &mut SqliteConnection,
    y: &HolidayYear,
    revision: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO holiday_years (year, source, revision, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (year) DO UPDATE SET source = excluded.source, \
         revision = excluded.revision, updated_at = excluded.updated_at",
    )
    .bind(y.year())
    .bind(y.source())
    .bind(revision)
    .bind(fmt_time(micros(at)))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM holiday_days WHERE year = ?")
        .bind(y.year())
        .execute(&mut *conn)
        .await?;
    for (kind, days) in [
        ("holiday", y.holidays()),
        ("makeup_workday", y.makeup_workdays()),
    ] {
        for d in days {
            sqlx::query("INSERT INTO holiday_days (date, year, kind, name) VALUES (?, ?, ?, ?)")
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
impl HolidayStore for SqliteStore {
    async fn holiday_years(&self) -> Result<Vec<HolidayYearInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT y.year, y.source, y.revision, y.updated_at, \
             COALESCE(SUM(d.kind = 'holiday'), 0) AS holidays, \
             COALESCE(SUM(d.kind = 'makeup_workday'), 0) AS makeup_workdays \
             FROM holiday_years y LEFT JOIN holiday_days d ON d.year = y.year \
             GROUP BY y.year ORDER BY y.year",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let updated_at: String = r.try_get("updated_at")?;
                let holidays: i64 = r.try_get("holidays")?;
                let makeup: i64 = r.try_get("makeup_workdays")?;
                Ok(HolidayYearInfo {
                    year: r.try_get("year")?,
                    source: r.try_get("source")?,
                    holidays: holidays as usize,
                    makeup_workdays: makeup as usize,
                    revision: r.try_get("revision")?,
                    updated_at: parse_time(&updated_at).map_err(|e| corrupt("updated_at", e))?,
                })
            })
            .collect()
    }

    async fn holiday_year(&self, year: i32) -> Result<Option<HolidayYear>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(read_years(&mut conn, Some(year)).await?.pop())
    }

    async fn holiday_calendar(&self) -> Result<HolidayCalendar, StoreError> {
        // One read transaction: the revision and the years come from the same snapshot.
        let mut tx = self.pool().begin().await?;
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
        let revision = max_revision(&mut tx).await? + 1;
        let mut added = Vec::new();
        for y in years {
            let inserted = sqlx::query(
                "INSERT INTO holiday_years (year, source, revision, updated_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (year) DO NOTHING",
            )
            .bind(y.year())
            .bind(y.source())
            .bind(revision)
            .bind(fmt_time(micros(at)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::{RawDay, shipped_years};

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        (dir, store)
    }

    fn year(y: i32, holiday: &str) -> HolidayYear {
        HolidayYear::new(
            y,
            "test",
            &[
                RawDay::new(format!("{y}-01-01"), "元旦"),
                RawDay::new(holiday, "春节"),
            ],
            &[],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn seeding_adds_missing_years_once_and_never_overwrites() {
        let (_dir, store) = store().await;
        assert_eq!(store.holiday_revision().await.unwrap(), 0);
        let now = Utc::now();
        // An operator's 2026 is there before the first start.
        let mine = year(2026, "2026-02-17");
        store
            .put_holiday_years(std::slice::from_ref(&mine), now)
            .await
            .unwrap();
        let shipped = shipped_years();
        // Two nodes starting at once.
        let (a, b) = tokio::join!(
            store.seed_holiday_years(&shipped, now),
            store.seed_holiday_years(&shipped, now)
        );
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        a.append(&mut b);
        a.sort();
        assert_eq!(a, [2024, 2025]);
        assert_eq!(store.holiday_year(2026).await.unwrap().unwrap(), mine);
        assert_eq!(store.holiday_year(2025).await.unwrap().unwrap(), shipped[1]);
        let rev = store.holiday_revision().await.unwrap();
        assert!(
            store
                .seed_holiday_years(&shipped, now)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.holiday_revision().await.unwrap(), rev);
        let infos = store.holiday_years().await.unwrap();
        assert_eq!(infos.len(), 3);
        assert_eq!(
            (infos[1].year, infos[1].holidays, infos[1].makeup_workdays),
            (2025, 28, 5)
        );
    }

    #[tokio::test]
    async fn put_adds_replaces_and_leaves_equal_years_alone() {
        let (_dir, store) = store().await;
        let now = Utc::now();
        let put = store
            .put_holiday_years(&[year(2027, "2027-02-06"), year(2028, "2028-01-26")], now)
            .await
            .unwrap();
        assert_eq!(put.revision, 1);
        assert_eq!(
            put.years,
            [(2027, YearChange::Added), (2028, YearChange::Added)]
        );
        let put = store
            .put_holiday_years(&[year(2027, "2027-02-07"), year(2028, "2028-01-26")], now)
            .await
            .unwrap();
        assert_eq!(put.revision, 2);
        assert_eq!(
            put.years,
            [(2027, YearChange::Replaced), (2028, YearChange::Unchanged)]
        );
        let put = store
            .put_holiday_years(&[year(2027, "2027-02-07")], now)
            .await
            .unwrap();
        assert_eq!((put.revision, put.years[0].1), (2, YearChange::Unchanged));

        let cal = store.holiday_calendar().await.unwrap();
        assert_eq!(cal.revision(), 2);
        let d = |s: &str| s.parse().unwrap();
        assert!(cal.is_holiday(d("2027-02-07")) && !cal.is_holiday(d("2027-02-06")));
        assert!(cal.is_holiday(d("2028-01-26")));
        assert_eq!(store.holiday_year(2029).await.unwrap(), None);
    }
}
