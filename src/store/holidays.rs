//! Storage of China's holiday calendar. Its own trait, a supertrait of
//! [`Store`](super::Store), so the calendar's storage stays apart from the rest.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::calendar::{HolidayCalendar, HolidayYear};

/// A stored year, summarised (`yizhan admin holidays list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayYearInfo {
    pub year: i32,
    pub source: String,
    pub holidays: usize,
    pub makeup_workdays: usize,
    /// The calendar's revision when this year was last written.
    pub revision: i64,
    pub updated_at: DateTime<Utc>,
}

/// What writing a year did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YearChange {
    Added,
    Replaced,
    /// The stored year was already exactly this one: nothing was written.
    Unchanged,
}

impl YearChange {
    pub fn as_str(self) -> &'static str {
        match self {
            YearChange::Added => "added",
            YearChange::Replaced => "replaced",
            YearChange::Unchanged => "unchanged",
        }
    }
}

/// The outcome of [`HolidayStore::put_holiday_years`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutHolidays {
    /// The calendar's revision after the write.
    pub revision: i64,
    /// Each year given, in order, and what happened to it.
    pub years: Vec<(i32, YearChange)>,
}

#[async_trait]
pub trait HolidayStore: Send + Sync {
    /// Every stored year, in order.
    async fn holiday_years(&self) -> Result<Vec<HolidayYearInfo>, StoreError>;
    /// One stored year.
    async fn holiday_year(&self, year: i32) -> Result<Option<HolidayYear>, StoreError>;
    /// Every stored year as one calendar, with the revision it was read at (one consistent
    /// read: a year written meanwhile is either in it with its revision, or left for the next
    /// read).
    async fn holiday_calendar(&self) -> Result<HolidayCalendar, StoreError>;
    /// Add or replace these (validated) years in one transaction: all or nothing. A year equal
    /// to the stored one is left alone; when every year is, the revision does not move.
    async fn put_holiday_years(
        &self,
        years: &[HolidayYear],
        at: DateTime<Utc>,
    ) -> Result<PutHolidays, StoreError>;
    /// Add those of these years that are not stored yet; a stored year is never touched (an
    /// operator's import wins over the shipped data). Safe when several nodes start at once.
    /// Returns the years added.
    async fn seed_holiday_years(
        &self,
        years: &[HolidayYear],
        at: DateTime<Utc>,
    ) -> Result<Vec<i32>, StoreError>;
    /// Changes whenever a year is added or replaced (0: no year stored). Cheap: the followers
    /// of every node read it on each tick.
    async fn holiday_revision(&self) -> Result<i64, StoreError>;
}

/// Stored years (`(year, source)`) and days (`(date, year, kind, name)`, kind
/// `holiday` or `makeup_workday`) as validated years: what every backend reads
/// back, assembled once.
pub(super) fn assemble_years(
    years: Vec<(i32, String)>,
    days: Vec<(String, i32, String, String)>,
) -> Result<Vec<HolidayYear>, StoreError> {
    use std::collections::BTreeMap;

    use crate::domain::calendar::RawDay;
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let mut by_year: BTreeMap<i32, (String, Vec<RawDay>, Vec<RawDay>)> = years
        .into_iter()
        .map(|(y, source)| (y, (source, vec![], vec![])))
        .collect();
    for (date, year, kind, name) in days {
        let entry = by_year
            .get_mut(&year)
            .ok_or_else(|| corrupt("holiday day without its year", &year))?;
        let day = RawDay::new(date, name);
        match kind.as_str() {
            "holiday" => entry.1.push(day),
            "makeup_workday" => entry.2.push(day),
            other => return Err(corrupt("holiday day kind", &other)),
        }
    }
    by_year
        .into_iter()
        .map(|(year, (source, holidays, makeup))| {
            HolidayYear::new(year, &source, &holidays, &makeup)
                .map_err(|e| corrupt("stored holiday year", &e))
        })
        .collect()
}
