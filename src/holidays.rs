//! A node's holiday calendar: seeded into an empty database, read from the store into the
//! index, followed like the site change feed, and watched so that operators hear, every day
//! from 1 November, that next year's calendar is still missing.
//!
//! The database is the source of truth; the calendar in the index is a cache of it. The
//! change-feed follower calls [`refresh`] on each tick (one cheap revision read), and the node
//! that writes a year calls it right after the commit, so every node evaluates opening hours
//! with the new calendar within one follow interval, without a restart.

use std::time::Duration;

use chrono::NaiveDate;

use crate::auth::Clock;
use crate::domain::calendar::{CalendarStatus, HolidayYear, shipped_years};
use crate::domain::hours::SHANGHAI;
use crate::index::SiteIndex;
use crate::store::{HolidayStore, StoreError};

/// How often a running node re-checks that the calendar is current (and warns if not).
pub const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Store the shipped years the database does not hold yet (an operator's own version of a year
/// is never overwritten). Idempotent; several nodes may do it at once.
pub async fn seed(store: &dyn HolidayStore, clock: &dyn Clock) -> Result<Vec<i32>, StoreError> {
    let added = store
        .seed_holiday_years(&shipped_years(), clock.now())
        .await?;
    if !added.is_empty() {
        tracing::info!(years = ?added, "seeded the holiday calendar with the shipped years");
    }
    Ok(added)
}

/// Install the stored calendar in `index` if it changed since the one installed (a revision
/// read when it has not). Returns whether a new calendar was installed.
pub async fn refresh(store: &dyn HolidayStore, index: &SiteIndex) -> Result<bool, StoreError> {
    if store.holiday_revision().await? == index.calendar().revision() {
        return Ok(false);
    }
    let calendar = store.holiday_calendar().await?;
    let (revision, years) = (calendar.revision(), year_list(calendar.years()));
    let installed = index.set_calendar(calendar);
    if installed {
        tracing::info!(revision, years = %years, "holiday calendar installed");
    }
    Ok(installed)
}

/// Today's date in Asia/Shanghai by `clock`.
pub fn today(clock: &dyn Clock) -> NaiveDate {
    clock.now().with_timezone(&SHANGHAI).date_naive()
}

/// Whether the calendar in `index` is current today.
pub fn status(index: &SiteIndex, clock: &dyn Clock) -> CalendarStatus {
    CalendarStatus::of_calendar(today(clock), &index.calendar())
}

/// The daily check: logs the warning, if there is one, and returns the status.
pub fn check(index: &SiteIndex, clock: &dyn Clock) -> CalendarStatus {
    let status = status(index, clock);
    if let Some(warning) = &status.warning {
        tracing::warn!(
            last_year = status.last_year,
            next_year_known = status.next_year_known,
            "{warning}"
        );
    }
    status
}

/// `2024, 2025, 2026` (for logs and the command line).
pub fn year_list(years: &[HolidayYear]) -> String {
    let names: Vec<String> = years.iter().map(|y| y.year().to_string()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
