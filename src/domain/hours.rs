//! Opening hours of service sites, evaluated in China time with China's official holiday calendar.
//!
//! Every site carries an OpenStreetMap [`opening_hours`] string. It is parsed by the
//! `opening-hours` crate and evaluated under the rules below.
//!
//! # Time zone
//!
//! Expressions are evaluated in Asia/Shanghai wall-clock time. China has used UTC+8 with no
//! daylight saving time since 1991, so [`SHANGHAI`] is a fixed offset (`chrono::FixedOffset`,
//! east 8 h) rather than a tz-database zone, which avoids depending on `chrono-tz`. The API
//! takes and returns `DateTime<Utc>`.
//!
//! # Public holidays (`PH`)
//!
//! * An [`Hours`] is bound to a [`HolidayCalendar`] (see `calendar`: the years operators keep in
//!   the database); [`Hours::with_calendar`] rebinds it to a newer calendar without parsing.
//! * Every holiday date in the [`HolidayCalendar`] is a `PH` day for the crate. That covers whole
//!   Golden Weeks and bridge days, not only the statutory days. So `PH off` and
//!   `PH 10:00-16:00` apply to each day of the Spring Festival or National Day week.
//! * The crate's built-in holiday data (incomplete for China) is not used, and `SH` (school
//!   holidays) never matches.
//! * Outside the years in the calendar (see [`HolidayCalendar::covers`]), holidays and make-up
//!   workdays are unknown and treated as absent: every day is an ordinary day of its weekday.
//!   Nothing is guessed.
//!
//! # Make-up workdays (调休上班日)
//!
//! A make-up workday is a Saturday or Sunday that is worked to compensate for a holiday bridge.
//! **It follows the schedule of the nearest working weekday**:
//!
//! * a make-up **Saturday** is evaluated as a **Friday**, namely the Friday just before it;
//! * a make-up **Sunday** is evaluated as a **Monday**, namely the Monday just after it.
//!
//! To do this, the expression is evaluated on a *proxy date*: D−1 for a Saturday D, D+1 for a
//! Sunday D. If that date is itself a holiday or a make-up workday, the same weekday one week
//! further away is used (earlier for a Saturday, later for a Sunday). The proxy day's schedule
//! (00:00–24:00) is then placed on the make-up date. A make-up workday listed on Monday–Friday
//! (which does not happen in the official schedules) is its own proxy.
//!
//! Why this rule: a make-up workday prolongs the adjacent run of working days. A make-up
//! Saturday closes the working week that ended on Friday, and a make-up Sunday opens the week
//! that continues on Monday. So the adjacent working weekday's schedule is the most faithful
//! choice. Because the proxy is a neighbouring date (normally one day away), any rules that
//! depend on the date (month ranges, `week`, seasons) change as little as possible. The rule is
//! deterministic and uses only the calendar.
//!
//! Known limits of this rule:
//! * A rule that names the make-up date itself (for example `2025 Sep 28 off`) is not seen,
//!   because the expression is evaluated at the proxy date.
//! * A range that a make-up day opens past midnight (such as `Mo-Fr 22:00-02:00` on a make-up
//!   Saturday) stops at midnight. The next day is evaluated by the crate as usual, from its real
//!   weekday. The early hours of a make-up day are those of its proxy day.
//!
//! # States
//!
//! Only the crate's `open` state counts as open. `closed`/`off` and **`unknown` count as
//! closed**. Comments are ignored, so two adjacent open ranges with different comments form one
//! open period. Sun events use the crate's defaults when no coordinates are given (dawn 06:00,
//! sunrise 07:00, sunset 19:00, dusk 20:00).
//!
//! # Evaluation, ranges across midnight, next change
//!
//! The model works day by day on local dates. The schedule of a local day is the crate's
//! `schedule_at(day)`, or `schedule_at(proxy)` on a make-up workday. The crate builds that
//! schedule from the day's own ranges, clipped at 24:00, plus the part of the previous day's
//! ranges that extends past 24:00 (extended times go up to 48:00). So `Mo-Su 22:00-06:00` is open
//! from 22:00 until 06:00 the next morning, and `Fr 22:00-06:00` covers Saturday 00:00–06:00.
//!
//! [`HoursState::next_change`] is the first instant after `at` at which the open/closed state
//! really differs. Adjacent open ranges are merged, including across midnight and across a
//! make-up day. So `24/7` and `Mo-Su 00:00-24:00` have no next change. The search stops at
//! [`HORIZON_DAYS`] days after `at`: `None` means "no change within the horizon". The syntax has
//! minute resolution: an instant inside a minute has the state of that minute, and changes always
//! fall on whole minutes.
//!
//! # Performance
//!
//! Evaluation keeps no global cache. Expressions whose state never changes (`24/7`, `off`, and
//! also `Mo-Su 00:00-24:00`, recognised through the crate's normalisation) are answered without
//! any search, from a flag computed at parse time. Otherwise, ordinary days are walked with the
//! crate's own iterator, which skips days where no rule can change (for example, straight to the
//! next holiday for `24/7; PH off`). The walk stops at the first change, so a change due tomorrow
//! costs one or two days of work (about 1–3 µs in release builds). Make-up workdays (a handful
//! per year) are evaluated one by one. The worst case is a long unchanged period over days the
//! crate cannot skip, such as `Mo-Su 00:00-24:00; PH off` months before the next holiday: about
//! 0.4 µs per day walked.
//!
//! [`opening_hours`]: https://wiki.openstreetmap.org/wiki/Key:opening_hours

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc,
};
use opening_hours::{Context, OpeningHours, RuleKind};

const SHANGHAI_OFFSET_SECS: i32 = 8 * 3600;

/// Asia/Shanghai as a fixed UTC+8 offset (China has had no DST since 1991).
pub const SHANGHAI: FixedOffset =
    FixedOffset::east_opt(SHANGHAI_OFFSET_SECS).expect("UTC+8 is a valid offset");

/// How far ahead [`Hours::evaluate`] looks for the next change of state.
pub const HORIZON_DAYS: i64 = 370;

pub use super::calendar::HolidayCalendar;

// ---------------------------------------------------------------------------------------------
// Opening hours
// ---------------------------------------------------------------------------------------------

/// A parsed `opening_hours` expression bound to a holiday calendar. Cheap to clone, and cheap
/// to bind to another calendar ([`Hours::with_calendar`]: no parsing).
#[derive(Clone)]
pub struct Hours {
    raw: Arc<str>,
    /// The expression, with the calendar's holidays as its `PH` context.
    oh: OpeningHours,
    calendar: Arc<HolidayCalendar>,
    /// `Some(is_open)` when the state never changes (`24/7`, `off`, ...).
    constant: Option<bool>,
}

/// Open/closed at an instant and when that next changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoursState {
    pub is_open: bool,
    /// The first instant after `at` where the state differs. `None` if there is none within
    /// [`HORIZON_DAYS`] days (e.g. `24/7`).
    pub next_change: Option<DateTime<Utc>>,
}

impl HoursState {
    /// Closed with no known reopening: a temporarily closed site, or hours that do not parse.
    pub const CLOSED: HoursState = HoursState {
        is_open: false,
        next_change: None,
    };
}

/// Why an `opening_hours` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursError {
    pub message: String,
    /// 0-based character offset of the fault in the expression, when known.
    pub position: Option<usize>,
}

impl HoursError {
    fn from_parser(input: &str, message: String) -> Self {
        let position = parser_position(input, &message);
        HoursError { message, position }
    }

    /// The parser's message, unchanged. Syntax errors span several lines: they point at the
    /// input and list what was expected.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The 0-based character offset (in Unicode scalar values, not bytes) in the input where
    /// parsing failed, for syntax errors. `None` for other errors (out-of-range values, empty
    /// input).
    pub fn position(&self) -> Option<usize> {
        self.position
    }
}

impl fmt::Display for HoursError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HoursError {}

/// Reads the position from a syntax error message. The crate's syntax errors begin with
/// ` --> line:column` (1-based, column counted in characters); the error value itself cannot
/// be inspected without depending on the crate's parser internals.
fn parser_position(input: &str, message: &str) -> Option<usize> {
    let first = message.lines().next()?;
    let (line, col) = first.trim().strip_prefix("--> ")?.split_once(':')?;
    let line: usize = line.trim().parse().ok()?;
    let col: usize = col.trim().parse().ok()?;
    if line == 0 || col == 0 {
        return None;
    }
    let before: usize = input
        .split('\n')
        .take(line - 1)
        .map(|l| l.chars().count() + 1)
        .sum();
    Some(before + col - 1)
}

impl Hours {
    /// Parses an `opening_hours` expression and binds it to `calendar`.
    /// Empty or blank strings are rejected.
    pub fn parse(s: &str, calendar: &Arc<HolidayCalendar>) -> Result<Hours, HoursError> {
        if s.trim().is_empty() {
            // The crate rejects "" with an unhelpful message and accepts "   " as 24/7.
            return Err(HoursError {
                message: "empty opening_hours expression".to_owned(),
                position: None,
            });
        }
        let oh =
            OpeningHours::from_str(s).map_err(|err| HoursError::from_parser(s, err.to_string()))?;
        // Decided without holidays: a constant expression is constant on every day.
        let constant = constant_state(&oh);
        Ok(Hours {
            raw: Arc::from(s),
            oh: bind(oh, calendar),
            calendar: calendar.clone(),
            constant,
        })
    }

    /// Checks an expression without binding it to a calendar (validation of input).
    pub fn validate(s: &str) -> Result<(), HoursError> {
        static NONE: OnceLock<Arc<HolidayCalendar>> = OnceLock::new();
        Hours::parse(s, NONE.get_or_init(Arc::default)).map(|_| ())
    }

    /// The same expression bound to another calendar, without parsing it again.
    pub fn with_calendar(&self, calendar: &Arc<HolidayCalendar>) -> Hours {
        Hours {
            raw: self.raw.clone(),
            oh: bind(self.oh.clone(), calendar),
            calendar: calendar.clone(),
            constant: self.constant,
        }
    }

    /// The original string.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The calendar this expression is evaluated with.
    pub fn calendar(&self) -> &Arc<HolidayCalendar> {
        &self.calendar
    }

    /// Whether the site is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        if let Some(is_open) = self.constant {
            return is_open;
        }
        let Some(local) = to_local(at) else {
            return false;
        };
        let day = local.date();
        if self.calendar.is_makeup_workday(day) {
            let secs = local.time().num_seconds_from_midnight();
            let proxy = self.calendar.makeup_proxy(day);
            self.oh.schedule_at(proxy).into_iter().any(|tr| {
                tr.kind == RuleKind::Open
                    && u32::from(tr.range.start.mins_from_midnight()) * 60 <= secs
                    && secs < u32::from(tr.range.end.mins_from_midnight()) * 60
            })
        } else {
            self.oh.is_open(local)
        }
    }

    /// The state at `at`: whether the site is open, and when that next changes (`None` if it
    /// does not within [`HORIZON_DAYS`] days, e.g. `24/7`).
    pub fn evaluate(&self, at: DateTime<Utc>) -> HoursState {
        if let Some(is_open) = self.constant {
            return HoursState {
                is_open,
                next_change: None,
            };
        }
        let Some(local) = to_local(at) else {
            return HoursState::CLOSED;
        };
        let horizon = local
            .checked_add_signed(TimeDelta::days(HORIZON_DAYS))
            .unwrap_or(NaiveDateTime::MAX);

        // Walk consecutive (open?, start) periods from `local` and stop at the first one whose
        // openness differs from the first.
        let mut walk = Walk { state: None };

        let mut cursor = local;
        'walk: while cursor < horizon {
            let day = cursor.date();
            // One lookup decides both branches, so the walk always moves forward.
            let next_makeup = self.calendar.next_makeup_workday_from(day);
            if next_makeup == Some(day) {
                let midnight = day.and_time(NaiveTime::MIN);
                let proxy = self.calendar.makeup_proxy(day);
                for tr in self.oh.schedule_at(proxy) {
                    let start = midnight + minutes(tr.range.start.mins_from_midnight());
                    let end = midnight + minutes(tr.range.end.mins_from_midnight());
                    if end <= cursor {
                        continue;
                    }
                    if start >= horizon {
                        break 'walk;
                    }
                    if let Some(change) = walk.observe(tr.kind == RuleKind::Open, start.max(cursor))
                    {
                        return walk.finish(Some(change));
                    }
                }
                cursor = midnight + TimeDelta::days(1);
            } else {
                // Ordinary days up to the next make-up workday: the crate's iterator.
                // `next_makeup` is after `day` here, so `segment_end > cursor`.
                let segment_end =
                    next_makeup.map_or(horizon, |d| d.and_time(NaiveTime::MIN).min(horizon));
                for range in self.oh.iter_range(cursor, segment_end) {
                    if let Some(change) =
                        walk.observe(range.kind == RuleKind::Open, range.range.start)
                    {
                        return walk.finish(Some(change));
                    }
                }
                cursor = segment_end;
            }
        }
        walk.finish(None)
    }
}

/// The state of a forward walk over consecutive periods.
struct Walk {
    /// Openness of the first period (the one containing the evaluated instant).
    state: Option<bool>,
}

impl Walk {
    /// Records the next period; returns its start if its openness differs from the first.
    fn observe(&mut self, open: bool, start: NaiveDateTime) -> Option<NaiveDateTime> {
        match self.state {
            None => {
                self.state = Some(open);
                None
            }
            Some(current) if current != open => Some(start),
            Some(_) => None,
        }
    }

    fn finish(self, change: Option<NaiveDateTime>) -> HoursState {
        HoursState {
            is_open: self.state.unwrap_or(false),
            next_change: change.and_then(to_utc),
        }
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hours").field(&self.raw).finish()
    }
}

/// The expression with `calendar`'s holidays as its `PH` days.
fn bind(oh: OpeningHours, calendar: &HolidayCalendar) -> OpeningHours {
    oh.with_context(Context::default().with_holidays(calendar.context().clone()))
}

/// `Some(is_open)` if the expression's state never changes.
///
/// The crate's `is_constant` only recognises literal forms (`24/7`, `off`, `00:00-24:00`), so
/// the normalised expression is checked too: it turns `Mo-Su 00:00-24:00` into `24/7`, which
/// would otherwise cost a 370-day walk on every evaluation. Normalisation has had bugs (it is
/// never used for evaluation), so its verdict is cross-checked against the original expression
/// on one ordinary week: every weekday must have a single state all day.
fn constant_state(oh: &OpeningHours) -> Option<bool> {
    let monday = NaiveDate::from_ymd_opt(2025, 3, 10)?; // an ordinary week, no holidays
    let is_open = oh.is_open(monday.and_time(NaiveTime::MIN));
    if oh.get_expression().is_constant() {
        return Some(is_open);
    }
    if !oh.normalize().get_expression().is_constant() {
        return None;
    }
    let uniform = (0..7).all(|i| {
        let day = monday + TimeDelta::days(i);
        oh.schedule_at(day)
            .into_iter()
            .all(|tr| (tr.kind == RuleKind::Open) == is_open)
    });
    uniform.then_some(is_open)
}

fn minutes(m: u16) -> TimeDelta {
    TimeDelta::minutes(i64::from(m))
}

/// Shanghai wall-clock time of a UTC instant (`None` only at the edges of chrono's range).
fn to_local(at: DateTime<Utc>) -> Option<NaiveDateTime> {
    at.naive_utc()
        .checked_add_signed(TimeDelta::seconds(i64::from(SHANGHAI_OFFSET_SECS)))
}

/// The UTC instant of a Shanghai wall-clock time.
fn to_utc(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    local
        .checked_sub_signed(TimeDelta::seconds(i64::from(SHANGHAI_OFFSET_SECS)))
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone};

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A Shanghai wall-clock time as a UTC instant.
    fn sh(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        SHANGHAI
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The shipped years, as a database seeded with them holds them.
    fn china() -> &'static Arc<HolidayCalendar> {
        static CHINA: OnceLock<Arc<HolidayCalendar>> = OnceLock::new();
        CHINA.get_or_init(|| {
            Arc::new(HolidayCalendar::new(
                crate::domain::calendar::shipped_years(),
                1,
            ))
        })
    }

    fn hours(s: &str) -> Hours {
        Hours::parse(s, china()).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn state(open: bool, next: Option<DateTime<Utc>>) -> HoursState {
        HoursState {
            is_open: open,
            next_change: next,
        }
    }

    /// Asserts `evaluate` and `is_open` at `at`.
    #[track_caller]
    fn check(h: &Hours, at: DateTime<Utc>, open: bool, next: Option<DateTime<Utc>>) {
        assert_eq!(h.evaluate(at), state(open, next), "{h:?} evaluated at {at}");
        assert_eq!(h.is_open(at), open, "{h:?} is_open at {at}");
    }

    // -- calendar ---------------------------------------------------------------------------

    #[test]
    fn shipped_calendar_loads_and_keeps_source() {
        let cal = china();
        assert!(cal.years()[0].source().contains("chinese-calendar 1.11.0"));
        let years: Vec<i32> = cal.years().iter().map(|y| y.year()).collect();
        assert_eq!(years, [2024, 2025, 2026]);
        assert!(cal.covers(date(2024, 1, 1)) && cal.covers(date(2026, 12, 31)));
        assert!(!cal.covers(date(2023, 12, 31)) && !cal.covers(date(2027, 1, 1)));
        for d in 1..=8 {
            assert!(cal.is_holiday(date(2025, 10, d)), "2025-10-{d:02}");
        }
        assert!(!cal.is_holiday(date(2025, 10, 9)));
        assert_eq!(cal.holiday_name(date(2025, 10, 1)), Some("National Day"));
        assert_eq!(cal.holiday_name(date(2025, 10, 9)), None);
        assert!(cal.is_makeup_workday(date(2025, 9, 28)));
        assert!(cal.is_makeup_workday(date(2025, 10, 11)));
        assert!(!cal.is_makeup_workday(date(2025, 10, 12)));
        assert!(!cal.is_holiday(date(2025, 9, 28)));
        assert_eq!(
            cal.year(2026).unwrap().holidays()[3].date,
            date(2026, 2, 15)
        );
    }

    #[test]
    fn makeup_proxy_is_the_adjacent_working_weekday() {
        let cal = china();
        // Saturday -> the Friday before, Sunday -> the Monday after.
        assert_eq!(cal.makeup_proxy(date(2025, 10, 11)), date(2025, 10, 10));
        assert_eq!(cal.makeup_proxy(date(2025, 9, 28)), date(2025, 9, 29));
        assert_eq!(cal.makeup_proxy(date(2026, 1, 4)), date(2026, 1, 5));
        // When the adjacent Friday is a holiday, go one more week back.
        let json = r#"{"years": {"2030": {
            "holidays": [{"date": "2030-01-04", "name": "x"}],
            "makeup_workdays": [{"date": "2030-01-05", "name": "x"}, {"date": "2030-01-06", "name": "x"}]}}}"#;
        let cal = HolidayCalendar::from_json(json).unwrap();
        assert_eq!(cal.makeup_proxy(date(2030, 1, 5)), date(2029, 12, 28));
        assert_eq!(cal.makeup_proxy(date(2030, 1, 6)), date(2030, 1, 7));
    }

    #[test]
    fn rebinding_to_a_new_calendar_changes_the_evaluation_only() {
        // 2027 unknown: 2027-10-01 (a Friday) and Saturday 2027-10-09 are ordinary days.
        let h = hours("Mo-Fr 09:00-17:00; PH off");
        check(
            &h,
            sh(2027, 10, 1, 10, 0),
            true,
            Some(sh(2027, 10, 1, 17, 0)),
        );
        check(
            &h,
            sh(2027, 10, 9, 10, 0),
            false,
            Some(sh(2027, 10, 11, 9, 0)),
        );
        let json = r#"{"years": {"2027": {
            "holidays": [{"date": "2027-10-01", "name": "National Day"}],
            "makeup_workdays": [{"date": "2027-10-09", "name": "National Day"}]}}}"#;
        let with_2027 = Arc::new(HolidayCalendar::from_json(json).unwrap());
        let rebound = h.with_calendar(&with_2027);
        assert_eq!(rebound.as_str(), h.as_str());
        assert!(Arc::ptr_eq(rebound.calendar(), &with_2027));
        check(
            &rebound,
            sh(2027, 10, 1, 10, 0),
            false,
            Some(sh(2027, 10, 4, 9, 0)),
        );
        check(
            &rebound,
            sh(2027, 10, 9, 10, 0),
            true,
            Some(sh(2027, 10, 9, 17, 0)),
        );
        // The original keeps its calendar.
        check(
            &h,
            sh(2027, 10, 1, 10, 0),
            true,
            Some(sh(2027, 10, 1, 17, 0)),
        );
    }

    // -- parsing ----------------------------------------------------------------------------

    #[test]
    fn invalid_strings_are_rejected_with_a_message() {
        for s in ["Mo-Fr 25:00-26:00", "blah", "", "   ", "2030-2020"] {
            let err = Hours::validate(s).unwrap_err();
            assert!(!err.message().is_empty(), "{s:?}");
            assert_eq!(err.to_string(), err.message());
        }
        let err = Hours::validate("Mo-Fr 25:00-26:00").unwrap_err();
        assert!(err.message().contains("expected"), "{}", err.message());
        assert_eq!(err.position(), Some(6));
        assert_eq!(Hours::validate("blah").unwrap_err().position(), Some(0));
        // Character offset, not bytes, after a Chinese comment.
        let err = Hours::validate("Mo-Fr 09:00-17:00 \"午休\" x").unwrap_err();
        assert_eq!(err.position(), Some(22)); // the space before `x` (byte offset 26)
        assert_eq!(Hours::validate("").unwrap_err().position(), None);
        // Not a syntax error: no position, the crate's text is kept.
        let err = Hours::validate("2030-2020").unwrap_err();
        assert_eq!(err.position(), None);
        assert!(err.message().contains("2020-2030"));
    }

    #[test]
    fn keeps_the_original_string_and_clones_cheaply() {
        let h = hours("Mo-Fr 09:00-17:00; PH off");
        let c = h.clone();
        assert_eq!(c.as_str(), "Mo-Fr 09:00-17:00; PH off");
        assert_eq!(h.to_string(), h.as_str());
        assert!(Arc::ptr_eq(&h.raw, &c.raw));
    }

    // -- evaluation -------------------------------------------------------------------------

    #[test]
    fn always_open() {
        for s in ["24/7", "Mo-Su 00:00-24:00", "00:00-24:00"] {
            let h = hours(s);
            for at in [
                sh(2024, 1, 1, 0, 0),
                sh(2025, 10, 1, 12, 0),
                sh(2025, 9, 28, 23, 59), // make-up workday
                sh(2026, 12, 31, 23, 59),
                sh(2030, 6, 15, 3, 0),
            ] {
                check(&h, at, true, None);
            }
        }
        check(&hours("off"), sh(2025, 10, 1, 12, 0), false, None);
        // Constant states are recognised at parse time, and only those.
        assert_eq!(hours("Mo-Su 00:00-24:00").constant, Some(true));
        assert_eq!(
            hours("Mo-Fr 00:00-24:00; Sa-Su 00:00-24:00").constant,
            Some(true)
        );
        assert_eq!(hours("Mo-Su off").constant, Some(false));
        assert_eq!(hours("Mo-Su 00:00-24:00; PH off").constant, None);
        assert_eq!(hours("Mo-Sa 00:00-24:00").constant, None);
        assert_eq!(hours("Mo-Su 00:00-23:59").constant, None);
    }

    #[test]
    fn daily_hours_with_utc_inputs() {
        let h = hours("Mo-Su 08:00-22:00");
        // 2025-03-12 07:59 in Shanghai is 2025-03-11 23:59 UTC.
        let utc = |d, hh, mm, ss| Utc.with_ymd_and_hms(2025, 3, d, hh, mm, ss).unwrap();
        check(&h, utc(11, 23, 59, 0), false, Some(utc(12, 0, 0, 0)));
        check(&h, utc(11, 23, 59, 59), false, Some(utc(12, 0, 0, 0)));
        check(&h, utc(12, 0, 0, 0), true, Some(utc(12, 14, 0, 0)));
        check(&h, utc(12, 13, 59, 0), true, Some(utc(12, 14, 0, 0)));
        check(&h, utc(12, 14, 0, 0), false, Some(utc(13, 0, 0, 0)));
        // Midnight in Shanghai is 16:00 UTC: still closed, opening at 08:00 local.
        check(&h, utc(12, 16, 0, 0), false, Some(utc(13, 0, 0, 0)));
        // Same checks through the Shanghai helper.
        check(
            &h,
            sh(2025, 3, 12, 7, 59),
            false,
            Some(sh(2025, 3, 12, 8, 0)),
        );
        check(
            &h,
            sh(2025, 3, 12, 21, 59),
            true,
            Some(sh(2025, 3, 12, 22, 0)),
        );
    }

    #[test]
    fn weekdays_public_holidays_and_makeup_workdays() {
        let h = hours("Mo-Fr 09:00-17:00; PH off");
        // National Day 2025 (a Wednesday) and the whole Golden Week 10-01..10-08.
        for d in 1..=8 {
            check(
                &h,
                sh(2025, 10, d, 10, 0),
                false,
                Some(sh(2025, 10, 9, 9, 0)),
            );
        }
        // An ordinary Wednesday.
        check(
            &h,
            sh(2025, 10, 15, 10, 0),
            true,
            Some(sh(2025, 10, 15, 17, 0)),
        );
        // Make-up Sunday 2025-09-28 and make-up Saturday 2025-10-11: 09:00-17:00.
        for d in [date(2025, 9, 28), date(2025, 10, 11)] {
            let (y, m, dd) = (d.year(), d.month(), d.day());
            check(&h, sh(y, m, dd, 8, 59), false, Some(sh(y, m, dd, 9, 0)));
            check(&h, sh(y, m, dd, 9, 0), true, Some(sh(y, m, dd, 17, 0)));
            check(&h, sh(y, m, dd, 16, 59), true, Some(sh(y, m, dd, 17, 0)));
        }
        check(
            &h,
            sh(2025, 9, 28, 17, 0),
            false,
            Some(sh(2025, 9, 29, 9, 0)),
        );
        check(
            &h,
            sh(2025, 10, 11, 17, 0),
            false,
            Some(sh(2025, 10, 13, 9, 0)),
        );
        // Friday evening before the make-up Saturday: opens next morning.
        check(
            &h,
            sh(2025, 10, 10, 17, 30),
            false,
            Some(sh(2025, 10, 11, 9, 0)),
        );
        // Saturday evening before the make-up Sunday.
        check(
            &h,
            sh(2025, 9, 27, 12, 0),
            false,
            Some(sh(2025, 9, 28, 9, 0)),
        );
        // An ordinary Saturday.
        check(
            &h,
            sh(2025, 10, 18, 12, 0),
            false,
            Some(sh(2025, 10, 20, 9, 0)),
        );
        // Tuesday 2025-09-30 after closing: next opening is after Golden Week.
        check(
            &h,
            sh(2025, 9, 30, 17, 30),
            false,
            Some(sh(2025, 10, 9, 9, 0)),
        );
    }

    #[test]
    fn makeup_saturday_is_a_friday_and_makeup_sunday_a_monday() {
        let h = hours("Mo 13:00-17:00; Tu-Fr 09:00-17:00; Sa 10:00-12:00; PH off");
        // Make-up Sunday 2025-09-28 follows Monday: opens at 13:00.
        check(
            &h,
            sh(2025, 9, 28, 10, 0),
            false,
            Some(sh(2025, 9, 28, 13, 0)),
        );
        // Make-up Saturday 2025-10-11 follows Friday, not Saturday.
        check(
            &h,
            sh(2025, 10, 11, 9, 30),
            true,
            Some(sh(2025, 10, 11, 17, 0)),
        );
        // An ordinary Saturday keeps its own schedule.
        check(
            &h,
            sh(2025, 10, 18, 9, 30),
            false,
            Some(sh(2025, 10, 18, 10, 0)),
        );
    }

    #[test]
    fn spring_festival_2026() {
        let cal = china();
        let h = hours("Mo-Fr 09:00-17:00; PH off");
        // 2026-02-15 (Sunday) .. 2026-02-23 (Monday) per the shipped calendar.
        for d in 15..=23 {
            assert!(cal.is_holiday(date(2026, 2, d)));
            check(
                &h,
                sh(2026, 2, d, 10, 0),
                false,
                Some(sh(2026, 2, 24, 9, 0)),
            );
        }
        // Make-up Saturday before it.
        check(
            &h,
            sh(2026, 2, 14, 10, 0),
            true,
            Some(sh(2026, 2, 14, 17, 0)),
        );
        check(
            &h,
            sh(2026, 2, 14, 17, 0),
            false,
            Some(sh(2026, 2, 24, 9, 0)),
        );

        let h = hours("Mo-Fr 09:00-17:00; PH 10:00-14:00");
        // Tuesday 2026-02-17, a holiday.
        check(
            &h,
            sh(2026, 2, 17, 9, 30),
            false,
            Some(sh(2026, 2, 17, 10, 0)),
        );
        check(
            &h,
            sh(2026, 2, 17, 10, 0),
            true,
            Some(sh(2026, 2, 17, 14, 0)),
        );
        check(
            &h,
            sh(2026, 2, 17, 13, 59),
            true,
            Some(sh(2026, 2, 17, 14, 0)),
        );
        check(
            &h,
            sh(2026, 2, 17, 14, 0),
            false,
            Some(sh(2026, 2, 18, 10, 0)),
        );
        // Saturday 2026-02-21, also a holiday.
        check(
            &h,
            sh(2026, 2, 21, 11, 0),
            true,
            Some(sh(2026, 2, 21, 14, 0)),
        );
        // Last holiday, then a normal Tuesday.
        check(
            &h,
            sh(2026, 2, 23, 14, 0),
            false,
            Some(sh(2026, 2, 24, 9, 0)),
        );
    }

    #[test]
    fn range_across_midnight() {
        let h = hours("Mo-Su 22:00-06:00");
        check(
            &h,
            sh(2025, 3, 12, 23, 0),
            true,
            Some(sh(2025, 3, 13, 6, 0)),
        );
        check(&h, sh(2025, 3, 12, 5, 0), true, Some(sh(2025, 3, 12, 6, 0)));
        check(
            &h,
            sh(2025, 3, 12, 12, 0),
            false,
            Some(sh(2025, 3, 12, 22, 0)),
        );
        check(
            &h,
            sh(2025, 3, 12, 6, 0),
            false,
            Some(sh(2025, 3, 12, 22, 0)),
        );
        // Across a make-up Sunday (2025-09-28): the night stays open.
        check(
            &h,
            sh(2025, 9, 27, 23, 0),
            true,
            Some(sh(2025, 9, 28, 6, 0)),
        );
        check(
            &h,
            sh(2025, 9, 28, 23, 0),
            true,
            Some(sh(2025, 9, 29, 6, 0)),
        );
        // Across New Year, in UTC.
        let at = Utc.with_ymd_and_hms(2025, 12, 31, 15, 0, 0).unwrap(); // 23:00 local
        check(
            &h,
            at,
            true,
            Some(Utc.with_ymd_and_hms(2025, 12, 31, 22, 0, 0).unwrap()),
        );

        // Weekday nights spill into Saturday morning.
        let h = hours("Mo-Fr 22:00-06:00");
        check(&h, sh(2025, 3, 15, 5, 0), true, Some(sh(2025, 3, 15, 6, 0)));
        check(
            &h,
            sh(2025, 3, 15, 6, 0),
            false,
            Some(sh(2025, 3, 17, 22, 0)),
        );
    }

    #[test]
    fn unknown_counts_as_closed_and_comments_are_merged() {
        let h = hours("Mo-Su 10:00-12:00 open, 12:00-14:00 unknown");
        check(
            &h,
            sh(2025, 3, 12, 11, 0),
            true,
            Some(sh(2025, 3, 12, 12, 0)),
        );
        // unknown -> closed is not a change.
        check(
            &h,
            sh(2025, 3, 12, 12, 30),
            false,
            Some(sh(2025, 3, 13, 10, 0)),
        );

        let h = hours(r#"Mo-Su 08:00-12:00 "morning", 12:00-18:00 "afternoon""#);
        check(
            &h,
            sh(2025, 3, 12, 9, 0),
            true,
            Some(sh(2025, 3, 12, 18, 0)),
        );
    }

    #[test]
    fn outside_the_calendar_years_there_are_no_holidays() {
        let h = hours("Mo-Fr 09:00-17:00; PH off");
        // 2027-10-01 is a Friday; the calendar does not cover 2027.
        assert!(!china().covers(date(2027, 10, 1)));
        check(
            &h,
            sh(2027, 10, 1, 10, 0),
            true,
            Some(sh(2027, 10, 1, 17, 0)),
        );
        // 2023-10-02 (a Monday) was a holiday, but 2023 is not covered: an ordinary Monday.
        check(
            &h,
            sh(2023, 10, 2, 10, 0),
            true,
            Some(sh(2023, 10, 2, 17, 0)),
        );
    }

    #[test]
    fn long_searches_and_horizon() {
        // Open all the time except holidays: next change is the next holiday.
        let h = hours("24/7; PH off");
        check(&h, sh(2025, 10, 9, 12, 0), true, Some(sh(2026, 1, 1, 0, 0)));
        check(
            &h,
            sh(2025, 10, 1, 12, 0),
            false,
            Some(sh(2025, 10, 9, 0, 0)),
        );
        // After the calendar ends, nothing changes any more.
        check(&h, sh(2026, 10, 8, 12, 0), true, None);
        // A change further away than the horizon is not reported.
        let h = hours("24/7; 2028 Jan 01 off");
        check(&h, sh(2026, 6, 1, 0, 0), true, None);
        check(&h, sh(2027, 1, 1, 0, 0), true, Some(sh(2028, 1, 1, 0, 0)));
    }

    // -- properties -------------------------------------------------------------------------

    /// splitmix64: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: i64) -> i64 {
            (self.next() % n as u64) as i64
        }
    }

    const EXPRESSIONS: &[&str] = &[
        "Mo-Fr 09:00-17:00; PH off",
        "Mo-Su 22:00-06:00",
        "Mo-Fr 22:00-02:00; PH off",
        "Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00; PH 10:00-14:00",
        "24/7; PH off",
        "Tu-Su 09:30-17:00; PH 10:00-16:00",
        "Mo-Fr 07:00-22:00; Sa-Su 08:00-20:00 unknown",
        "Mo 13:00-17:00; Tu-Fr 09:00-17:00; Sa 10:00-12:00; PH off",
        "sunrise-sunset",
        "Oct Mo-Su 10:00-16:00; Jan-Sep,Nov-Dec Mo-Fr 08:00-18:00",
    ];

    #[test]
    fn state_is_constant_until_next_change_and_flips_there() {
        let mut rng = Rng(0x5EED_2025);
        let start = sh(2024, 1, 1, 0, 0);
        let span = (sh(2027, 1, 1, 0, 0) - start).num_seconds();
        // Random instants plus the special days of the calendar.
        let mut instants: Vec<DateTime<Utc>> = (0..150)
            .map(|_| start + TimeDelta::seconds(rng.below(span)))
            .collect();
        for (y, m, d) in [(2025, 9, 28), (2025, 10, 11), (2026, 2, 14), (2024, 5, 11)] {
            for h in [0, 3, 9, 12, 17, 23] {
                instants.push(sh(y, m, d, h, 30));
            }
        }
        for s in EXPRESSIONS {
            let h = hours(s);
            for &t in &instants {
                let st = h.evaluate(t);
                assert_eq!(h.is_open(t), st.is_open, "{s:?} at {t}");
                let Some(next) = st.next_change else {
                    for k in 1..=8 {
                        let u = t + TimeDelta::days(HORIZON_DAYS) * k / 9;
                        assert_eq!(h.is_open(u), st.is_open, "{s:?} at {u} (from {t})");
                    }
                    continue;
                };
                assert!(next > t, "{s:?} at {t}: next {next}");
                assert!(next - t <= TimeDelta::days(HORIZON_DAYS), "{s:?} at {t}");
                assert_eq!(next.timestamp() % 60, 0, "{s:?}: whole minutes");
                let gap = next - t;
                for k in 1..=4 {
                    let u = t + gap * k / 5;
                    assert_eq!(h.is_open(u), st.is_open, "{s:?} at {u} (from {t})");
                    assert_eq!(h.evaluate(u), st, "{s:?} at {u} (from {t})");
                }
                let just_before = next - TimeDelta::seconds(1);
                assert_eq!(h.is_open(just_before), st.is_open, "{s:?} at {just_before}");
                assert_ne!(h.is_open(next), st.is_open, "{s:?} at {next} (from {t})");
            }
        }
    }

    #[test]
    fn next_change_matches_a_minute_by_minute_scan_over_golden_week() {
        // Independent check: every minute from 2025-09-26 to 2025-10-14 (make-up days,
        // holidays, ordinary days), is_open transitions must be exactly the next_change chain.
        for s in [
            "Mo-Fr 09:00-17:00; PH off",
            "Mo-Fr 22:00-02:00; PH 12:00-13:00",
            "Mo 13:00-17:00; Tu-Fr 09:00-17:00; Sa 10:00-12:00; PH off",
        ] {
            let h = hours(s);
            let begin = sh(2025, 9, 26, 0, 0);
            let end = sh(2025, 10, 14, 0, 0);
            let mut scanned = Vec::new();
            let mut prev = h.is_open(begin);
            let mut t = begin;
            while t < end {
                t += TimeDelta::minutes(1);
                let open = h.is_open(t);
                if open != prev {
                    scanned.push(t);
                    prev = open;
                }
            }
            let mut chained = Vec::new();
            let mut t = begin;
            while let Some(next) = h.evaluate(t).next_change {
                if next >= end {
                    break;
                }
                chained.push(next);
                t = next;
            }
            assert!(!scanned.is_empty(), "{s:?}");
            assert_eq!(scanned, chained, "{s:?}");
        }
    }
}
