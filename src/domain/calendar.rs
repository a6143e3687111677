//! China's official holiday calendar: public holidays (法定节假日, whole Golden Weeks
//! included) and make-up workdays (调休上班日), one year at a time.
//!
//! The State Council publishes each next year's arrangement in November or December, so the
//! calendar is data that operators keep current, not code: it lives in the database, a year is
//! added or replaced with `yizhan admin holidays import FILE` (or `PUT /v1/admin/holidays/{year}`),
//! and every node picks it up through its change-feed follower. The years shipped in
//! `geodata/cn-holidays-2024-2026.json` are compiled in only to seed an empty database.
//!
//! Everything here is pure: [`HolidayYear::new`] validates one year, [`parse_calendar_file`] a
//! whole file (all or nothing), [`HolidayCalendar`] is what opening hours are evaluated with, and
//! [`CalendarStatus`] decides when operators must be warned that next year is still unknown.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};
use opening_hours::ContextHolidays;
use serde::{Deserialize, Serialize};

/// The shipped calendar (path relative to this file): the seed of an empty database.
const SHIPPED_JSON: &str = include_str!("../../geodata/cn-holidays-2024-2026.json");

/// The only time zone accepted in a calendar file's optional `timezone` field.
pub const CALENDAR_TIMEZONE: &str = "Asia/Shanghai";

/// The years a calendar may hold.
pub const MIN_YEAR: i32 = 2000;
pub const MAX_YEAR: i32 = 2100;

/// At most this many holidays, and as many make-up workdays, in one year (the official
/// arrangements have about 30 and 8).
pub const MAX_DAYS_PER_YEAR: usize = 100;
const MAX_NAME_CHARS: usize = 100;
const MAX_SOURCE_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// One year
// ---------------------------------------------------------------------------------------------

/// A day of the calendar and the name of the holiday it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarDay {
    pub date: NaiveDate,
    /// As the calendar names it, e.g. "National Day" or "国庆节".
    pub name: String,
}

/// A day as written in a file or a request body, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDay {
    pub date: String,
    #[serde(default)]
    pub name: String,
}

impl RawDay {
    pub fn new(date: impl Into<String>, name: impl Into<String>) -> RawDay {
        RawDay {
            date: date.into(),
            name: name.into(),
        }
    }
}

/// One year's official arrangement, validated: every date inside the year, no date listed
/// twice, no date both a holiday and a make-up workday, make-up workdays on Saturdays and
/// Sundays, every day named. Days are kept in date order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayYear {
    year: i32,
    source: String,
    holidays: Vec<CalendarDay>,
    makeup_workdays: Vec<CalendarDay>,
}

/// Why a calendar (a year, a file or a request body) was rejected. It names the year and the
/// field (`holidays[3].date`), and the message starts with the date at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarError {
    pub year: Option<i32>,
    /// Where in the year (or the file, for errors outside a year): `makeup_workdays[1].date`.
    pub field: Option<String>,
    pub message: String,
}

impl CalendarError {
    fn new(year: Option<i32>, field: Option<String>, message: impl Into<String>) -> Self {
        CalendarError {
            year,
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.year, &self.field) {
            (Some(y), Some(field)) => write!(f, "year {y}, {field}: {}", self.message),
            (Some(y), None) => write!(f, "year {y}: {}", self.message),
            (None, Some(field)) => write!(f, "{field}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CalendarError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DayKind {
    Holiday,
    Makeup,
}

impl DayKind {
    fn list(self) -> &'static str {
        match self {
            DayKind::Holiday => "holidays",
            DayKind::Makeup => "makeup_workdays",
        }
    }
}

impl HolidayYear {
    /// Validates one year. The first fault found is returned, naming the year, the field and
    /// the date.
    pub fn new(
        year: i32,
        source: &str,
        holidays: &[RawDay],
        makeup_workdays: &[RawDay],
    ) -> Result<HolidayYear, CalendarError> {
        let err = |field: Option<String>, message: String| {
            Err(CalendarError::new(Some(year), field, message))
        };
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return err(None, format!("outside {MIN_YEAR}..{MAX_YEAR}"));
        }
        let source = source.trim();
        if source.chars().count() > MAX_SOURCE_CHARS {
            return err(
                Some("source".into()),
                format!("longer than {MAX_SOURCE_CHARS} characters"),
            );
        }
        if source.chars().any(char::is_control) {
            return err(Some("source".into()), "contains control characters".into());
        }
        if holidays.is_empty() {
            return err(
                Some("holidays".into()),
                "no holidays: every year has at least New Year's Day".into(),
            );
        }
        for (kind, days) in [
            (DayKind::Holiday, holidays),
            (DayKind::Makeup, makeup_workdays),
        ] {
            if days.len() > MAX_DAYS_PER_YEAR {
                return err(
                    Some(kind.list().into()),
                    format!("more than {MAX_DAYS_PER_YEAR} days"),
                );
            }
        }

        // Every date once, in either list; the first listing of a date is remembered so that a
        // repetition names both places.
        let mut seen: BTreeMap<NaiveDate, (DayKind, usize)> = BTreeMap::new();
        let mut out = [Vec::new(), Vec::new()];
        for (slot, (kind, days)) in [
            (DayKind::Holiday, holidays),
            (DayKind::Makeup, makeup_workdays),
        ]
        .into_iter()
        .enumerate()
        {
            for (i, raw) in days.iter().enumerate() {
                let at = |what: &str| Some(format!("{}[{i}].{what}", kind.list()));
                let date = match parse_date(&raw.date) {
                    Some(d) => d,
                    None => {
                        return err(
                            at("date"),
                            format!("{:?} is not a date (YYYY-MM-DD)", raw.date),
                        );
                    }
                };
                if date.year() != year {
                    return err(at("date"), format!("{date} is not in {year}"));
                }
                if kind == DayKind::Makeup && !is_weekend(date) {
                    return err(
                        at("date"),
                        format!(
                            "{date} is a {}; a make-up workday (调休上班日) is a Saturday or Sunday",
                            weekday_name(date.weekday())
                        ),
                    );
                }
                match seen.entry(date) {
                    Entry::Vacant(v) => {
                        v.insert((kind, i));
                    }
                    Entry::Occupied(o) => {
                        let (first_kind, first_i) = *o.get();
                        let message = if first_kind == kind {
                            format!("{date} is listed twice (also {}[{first_i}])", kind.list())
                        } else {
                            format!("{date} is both a holiday and a make-up workday")
                        };
                        return err(at("date"), message);
                    }
                }
                let name = raw.name.trim();
                if name.is_empty() {
                    return err(at("name"), format!("{date} has no name"));
                }
                if name.chars().count() > MAX_NAME_CHARS {
                    return err(
                        at("name"),
                        format!("{date}: name longer than {MAX_NAME_CHARS} characters"),
                    );
                }
                if name.chars().any(char::is_control) {
                    return err(
                        at("name"),
                        format!("{date}: name contains control characters"),
                    );
                }
                out[slot].push(CalendarDay {
                    date,
                    name: name.to_owned(),
                });
            }
        }
        let [mut holidays, mut makeup_workdays] = out;
        holidays.sort_by_key(|d| d.date);
        makeup_workdays.sort_by_key(|d| d.date);
        Ok(HolidayYear {
            year,
            source: source.to_owned(),
            holidays,
            makeup_workdays,
        })
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    /// Where the data comes from (free text; may be empty).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Public holidays, in date order.
    pub fn holidays(&self) -> &[CalendarDay] {
        &self.holidays
    }

    /// Make-up workdays, in date order.
    pub fn makeup_workdays(&self) -> &[CalendarDay] {
        &self.makeup_workdays
    }
}

/// Only `YYYY-MM-DD` with two-digit month and day.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar files
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    source: String,
    #[serde(default)]
    timezone: Option<String>,
    years: BTreeMap<String, FileYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYear {
    #[serde(default)]
    holidays: Vec<RawDay>,
    #[serde(default)]
    makeup_workdays: Vec<RawDay>,
}

/// Parses and validates a calendar in the `geodata/cn-holidays-*.json` format, all or nothing:
/// `{"source": "...", "timezone": "Asia/Shanghai", "years": {"2027": {"holidays":
/// [{"date": "2027-01-01", "name": "New Year's Day"}, ...], "makeup_workdays": [...]}}}`.
/// Years come back in order.
pub fn parse_calendar_file(json: &str) -> Result<Vec<HolidayYear>, CalendarError> {
    let file: CalendarFile = serde_json::from_str(json)
        .map_err(|e| CalendarError::new(None, None, format!("not a holiday calendar: {e}")))?;
    if let Some(tz) = &file.timezone
        && tz != CALENDAR_TIMEZONE
    {
        return Err(CalendarError::new(
            None,
            Some("timezone".into()),
            format!("{tz:?}: dates are in {CALENDAR_TIMEZONE}"),
        ));
    }
    if file.years.is_empty() {
        return Err(CalendarError::new(
            None,
            Some("years".into()),
            "the file holds no year",
        ));
    }
    let mut years = Vec::with_capacity(file.years.len());
    for (key, y) in &file.years {
        let year: i32 = key.parse().ok().filter(|_| key.len() == 4).ok_or_else(|| {
            CalendarError::new(
                None,
                Some(format!("years.{key}")),
                format!("{key:?} is not a year"),
            )
        })?;
        years.push(HolidayYear::new(
            year,
            &file.source,
            &y.holidays,
            &y.makeup_workdays,
        )?);
    }
    years.sort_by_key(HolidayYear::year);
    Ok(years)
}

/// The years shipped in `geodata/cn-holidays-2024-2026.json`: what an empty database is seeded
/// with. (A unit test keeps the file valid.)
pub fn shipped_years() -> Vec<HolidayYear> {
    parse_calendar_file(SHIPPED_JSON)
        .unwrap_or_else(|e| panic!("geodata/cn-holidays-2024-2026.json is invalid: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The calendar opening hours are evaluated with
// ---------------------------------------------------------------------------------------------

/// Every known year, indexed for evaluation. Immutable: a new calendar replaces the old one
/// whole. Outside its years, holidays and make-up workdays are unknown and treated as absent.
#[derive(Debug, Clone)]
pub struct HolidayCalendar {
    /// Unique per calendar built in this process: caches of evaluations are keyed by it.
    id: u64,
    /// The store's revision this calendar was read at (0: not from a store).
    revision: i64,
    /// Sorted by year, one entry per year.
    years: Vec<HolidayYear>,
    /// Holiday dates with their names, sorted, no duplicates.
    holidays: Vec<(NaiveDate, Box<str>)>,
    /// Make-up workdays, sorted, no duplicates, disjoint from `holidays`.
    makeup_workdays: Vec<NaiveDate>,
    /// The holidays as the `opening-hours` crate's `PH` calendar.
    context: ContextHolidays,
}

impl Default for HolidayCalendar {
    /// No year known: no holidays and no make-up workdays.
    fn default() -> Self {
        HolidayCalendar::new(Vec::new(), 0)
    }
}

impl HolidayCalendar {
    /// A calendar of these years, read at store `revision`. A year given twice: the later wins.
    pub fn new(years: impl IntoIterator<Item = HolidayYear>, revision: i64) -> HolidayCalendar {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let by_year: BTreeMap<i32, HolidayYear> = years.into_iter().map(|y| (y.year, y)).collect();
        let years: Vec<HolidayYear> = by_year.into_values().collect();
        // Years are disjoint and each year's days are sorted and unique, so concatenating the
        // years in order keeps both lists sorted and unique.
        let holidays: Vec<(NaiveDate, Box<str>)> = years
            .iter()
            .flat_map(|y| &y.holidays)
            .map(|d| (d.date, d.name.as_str().into()))
            .collect();
        let makeup_workdays: Vec<NaiveDate> = years
            .iter()
            .flat_map(|y| &y.makeup_workdays)
            .map(|d| d.date)
            .collect();
        let public = Arc::new(holidays.iter().map(|(date, _)| *date).collect());
        HolidayCalendar {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            revision,
            years,
            holidays,
            makeup_workdays,
            context: ContextHolidays::new(public, Arc::default()),
        }
    }

    /// A calendar from a file in the `geodata/cn-holidays-*.json` format (revision 0).
    pub fn from_json(json: &str) -> Result<HolidayCalendar, CalendarError> {
        Ok(HolidayCalendar::new(parse_calendar_file(json)?, 0))
    }

    /// Identifies this calendar among all built in this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The store's revision this calendar was read at.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The known years, in order.
    pub fn years(&self) -> &[HolidayYear] {
        &self.years
    }

    /// One known year.
    pub fn year(&self, year: i32) -> Option<&HolidayYear> {
        self.year_index(year).ok().map(|i| &self.years[i])
    }

    /// The latest known year.
    pub fn last_year(&self) -> Option<i32> {
        self.years.last().map(HolidayYear::year)
    }

    /// Whether the calendar knows the year of `d`. Outside these years, holidays and make-up
    /// workdays are unknown and treated as absent.
    pub fn covers(&self, d: NaiveDate) -> bool {
        self.year_index(d.year()).is_ok()
    }

    /// Whether `d` is a public holiday (any day of a Golden Week included).
    pub fn is_holiday(&self, d: NaiveDate) -> bool {
        self.holiday_index(d).is_ok()
    }

    /// The name of the holiday on `d` as written in the calendar (e.g. "National Day").
    pub fn holiday_name(&self, d: NaiveDate) -> Option<&str> {
        let i = self.holiday_index(d).ok()?;
        Some(&self.holidays[i].1)
    }

    /// Whether `d` is a make-up workday (调休上班日).
    pub fn is_makeup_workday(&self, d: NaiveDate) -> bool {
        self.makeup_workdays.binary_search(&d).is_ok()
    }

    /// The holidays as the `opening-hours` crate's `PH` calendar.
    pub(crate) fn context(&self) -> &ContextHolidays {
        &self.context
    }

    fn year_index(&self, year: i32) -> Result<usize, usize> {
        self.years.binary_search_by_key(&year, HolidayYear::year)
    }

    fn holiday_index(&self, d: NaiveDate) -> Result<usize, usize> {
        self.holidays.binary_search_by_key(&d, |(date, _)| *date)
    }

    /// The first make-up workday on or after `d`.
    pub(crate) fn next_makeup_workday_from(&self, d: NaiveDate) -> Option<NaiveDate> {
        let i = self.makeup_workdays.partition_point(|m| *m < d);
        self.makeup_workdays.get(i).copied()
    }

    /// The ordinary date whose schedule a make-up workday `d` follows (see `hours`): the
    /// previous Friday for a Saturday, the next Monday for a Sunday, moving one more week away
    /// while that date is itself a holiday or a make-up workday.
    pub(crate) fn makeup_proxy(&self, d: NaiveDate) -> NaiveDate {
        let step = match d.weekday() {
            Weekday::Sat => -1,
            Weekday::Sun => 1,
            _ => return d,
        };
        let mut proxy = d + TimeDelta::days(step);
        // Bounded: the calendar cannot hold more than a year of consecutive special weekdays.
        for _ in 0..60 {
            if !self.is_holiday(proxy) && !self.is_makeup_workday(proxy) {
                break;
            }
            proxy += TimeDelta::days(7 * step);
        }
        proxy
    }
}

// ---------------------------------------------------------------------------------------------
// The yearly warning
// ---------------------------------------------------------------------------------------------

/// From this month on, the next year's arrangement is due (the State Council publishes it in
/// November or December).
pub const WARN_FROM_MONTH: u32 = 11;

/// Whether the calendar is current on a day (in Asia/Shanghai), and the warning operators must
/// not miss when it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarStatus {
    /// The latest known year.
    pub last_year: Option<i32>,
    /// Whether the current year is known.
    pub current_year_known: bool,
    /// Whether the year after the current one is known.
    pub next_year_known: bool,
    /// Set when the current year is unknown, or from 1 November while the next year is.
    pub warning: Option<String>,
}

impl CalendarStatus {
    /// The status on `today` (a date in Asia/Shanghai) for a calendar knowing `years`.
    pub fn of(today: NaiveDate, years: &[i32]) -> CalendarStatus {
        let y = today.year();
        let current_year_known = years.contains(&y);
        let next_year_known = years.contains(&(y + 1));
        let fix = |year: i32| {
            format!(
                "import the State Council's {year} arrangement with `yizhan admin holidays import \
                 FILE` or PUT /v1/admin/holidays/{year}"
            )
        };
        let warning = if !current_year_known {
            Some(format!(
                "the holiday calendar has no {y}: opening hours ignore holidays (PH) and make-up \
                 workdays; {}",
                fix(y)
            ))
        } else if today.month() >= WARN_FROM_MONTH && !next_year_known {
            Some(format!(
                "the holiday calendar has no {next}: from 1 January {next} opening hours will \
                 ignore holidays (PH) and make-up workdays; {}",
                fix(y + 1),
                next = y + 1,
            ))
        } else {
            None
        };
        CalendarStatus {
            last_year: years.iter().copied().max(),
            current_year_known,
            next_year_known,
            warning,
        }
    }

    /// The status of `calendar` on `today` (a date in Asia/Shanghai).
    pub fn of_calendar(today: NaiveDate, calendar: &HolidayCalendar) -> CalendarStatus {
        let years: Vec<i32> = calendar.years().iter().map(HolidayYear::year).collect();
        CalendarStatus::of(today, &years)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn day(date: &str, name: &str) -> RawDay {
        RawDay::new(date, name)
    }

    /// A plausible 2027: New Year, Spring Festival with a make-up Sunday and Saturday.
    fn year_2027() -> (Vec<RawDay>, Vec<RawDay>) {
        let mut holidays = vec![day("2027-01-01", "New Year's Day")];
        for d in 6..=14 {
            holidays.push(day(&format!("2027-02-{d:02}"), "Spring Festival"));
        }
        let makeup = vec![
            day("2027-02-20", "Spring Festival"),
            day("2027-01-31", "Spring Festival"),
        ];
        (holidays, makeup)
    }

    #[test]
    fn a_valid_year_is_kept_in_date_order() {
        let (h, m) = year_2027();
        let y = HolidayYear::new(2027, " test ", &h, &m).unwrap();
        assert_eq!(y.year(), 2027);
        assert_eq!(y.source(), "test");
        assert_eq!(y.holidays().len(), 10);
        assert_eq!(y.holidays()[0].date, date(2027, 1, 1));
        assert_eq!(
            y.makeup_workdays()
                .iter()
                .map(|d| d.date)
                .collect::<Vec<_>>(),
            [date(2027, 1, 31), date(2027, 2, 20)]
        );
    }

    #[test]
    fn errors_name_the_year_the_field_and_the_date() {
        let (h, m) = year_2027();
        let with = |f: &dyn Fn(&mut Vec<RawDay>, &mut Vec<RawDay>)| {
            let (mut h, mut m) = (h.clone(), m.clone());
            f(&mut h, &mut m);
            HolidayYear::new(2027, "", &h, &m).unwrap_err()
        };
        let cases: Vec<(CalendarError, &str, &str)> = vec![
            (
                with(&|_, m| m.push(day("2027-02-22", "Spring Festival"))),
                "makeup_workdays[2].date",
                "2027-02-22 is a Monday",
            ),
            (
                with(&|h, _| h.push(day("2026-12-31", "New Year's Eve"))),
                "holidays[10].date",
                "2026-12-31 is not in 2027",
            ),
            (
                with(&|_, m| m.push(day("2027-02-13", "Spring Festival"))),
                "makeup_workdays[2].date",
                "2027-02-13 is both a holiday and a make-up workday",
            ),
            (
                with(&|h, _| h.push(day("2027-02-07", "Spring Festival"))),
                "holidays[10].date",
                "2027-02-07 is listed twice (also holidays[2])",
            ),
            (
                with(&|h, _| h[3].date = "2027-2-8".into()),
                "holidays[3].date",
                "\"2027-2-8\" is not a date",
            ),
            (
                with(&|h, _| h[3].date = "2027-02-30".into()),
                "holidays[3].date",
                "not a date",
            ),
            (
                with(&|h, _| h[2].name = "  ".into()),
                "holidays[2].name",
                "2027-02-07 has no name",
            ),
            (with(&|h, _| h.clear()), "holidays", "no holidays"),
        ];
        for (err, field, message) in cases {
            assert_eq!(err.year, Some(2027), "{err}");
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
            assert!(err.message.contains(message), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("year 2027, {field}: ")),
                "{err}"
            );
        }
        let err = HolidayYear::new(1999, "", &h, &m).unwrap_err();
        assert_eq!(err.to_string(), "year 1999: outside 2000..2100");
    }

    #[test]
    fn a_file_is_all_or_nothing_and_errors_name_the_year() {
        let good = r#"{"source": "s", "timezone": "Asia/Shanghai", "years": {
            "2028": {"holidays": [{"date": "2028-01-01", "name": "元旦"}]},
            "2027": {"holidays": [{"date": "2027-01-01", "name": "元旦"}],
                     "makeup_workdays": [{"date": "2027-02-20", "name": "春节"}]}}}"#;
        let years = parse_calendar_file(good).unwrap();
        assert_eq!(
            years.iter().map(|y| y.year()).collect::<Vec<_>>(),
            [2027, 2028]
        );
        assert_eq!(years[0].source(), "s");

        let bad = good.replace("2027-02-20", "2027-02-22");
        let err = parse_calendar_file(&bad).unwrap_err();
        assert_eq!(err.year, Some(2027));
        assert!(err.to_string().contains("2027-02-22 is a Monday"), "{err}");

        for (json, expected) in [
            ("not json", "not a holiday calendar"),
            (r#"{"years": {}}"#, "no year"),
            (r#"{"years": {"x": {}}}"#, "\"x\" is not a year"),
            (r#"{"years": {"20270": {}}}"#, "not a year"),
            (
                r#"{"timezone": "Europe/Paris", "years": {}}"#,
                "Asia/Shanghai",
            ),
            (
                r#"{"years": {"2027": {"holiday": [{"date": "2027-01-01", "name": "x"}]}}}"#,
                "unknown field",
            ),
            (
                r#"{"years": {"2027": {"holidays": [{"date": "2027-01-01", "nmae": "x"}]}}}"#,
                "unknown field",
            ),
        ] {
            let err = parse_calendar_file(json).unwrap_err();
            assert!(err.to_string().contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn the_shipped_file_is_valid() {
        let years = shipped_years();
        assert_eq!(
            years.iter().map(|y| y.year()).collect::<Vec<_>>(),
            [2024, 2025, 2026]
        );
        assert!(years[0].source().contains("chinese-calendar 1.11.0"));
        let cal = HolidayCalendar::new(years, 0);
        assert_eq!(cal.holiday_name(date(2025, 10, 1)), Some("National Day"));
        assert!(cal.is_makeup_workday(date(2025, 9, 28)));
        assert_eq!(cal.last_year(), Some(2026));
    }

    #[test]
    fn a_calendar_replaces_a_year_given_twice_and_ids_differ() {
        let a = HolidayYear::new(2027, "", &[day("2027-01-01", "元旦")], &[]).unwrap();
        let b = HolidayYear::new(2027, "", &[day("2027-10-01", "国庆节")], &[]).unwrap();
        let cal = HolidayCalendar::new([a, b], 7);
        assert_eq!(cal.years().len(), 1);
        assert!(cal.is_holiday(date(2027, 10, 1)) && !cal.is_holiday(date(2027, 1, 1)));
        assert_eq!(cal.revision(), 7);
        assert_ne!(cal.id(), HolidayCalendar::default().id());
        assert_eq!(cal.clone().id(), cal.id());
        assert!(HolidayCalendar::default().years().is_empty());
    }

    #[test]
    fn the_warning_comes_on_1_november_while_next_year_is_unknown() {
        let known = [2024, 2025, 2026];
        let on = |y, m, d| CalendarStatus::of(date(y, m, d), &known);
        assert_eq!(on(2026, 10, 31).warning, None);
        let s = on(2026, 11, 1);
        assert!(s.warning.as_deref().unwrap().contains("no 2027"), "{s:?}");
        assert_eq!(s.last_year, Some(2026));
        assert!(s.current_year_known && !s.next_year_known);
        assert!(on(2026, 12, 31).warning.is_some());
        // Next year known: no warning.
        let s = CalendarStatus::of(date(2026, 11, 1), &[2026, 2027]);
        assert_eq!(s.warning, None);
        assert!(s.next_year_known);
        // The current year unknown: a warning whatever the month.
        let s = on(2027, 3, 1);
        assert!(
            s.warning.as_deref().unwrap().contains("has no 2027"),
            "{s:?}"
        );
        assert!(!s.current_year_known);
        let s = CalendarStatus::of(date(2026, 3, 1), &[]);
        assert_eq!(s.last_year, None);
        assert!(s.warning.is_some());
    }
}
