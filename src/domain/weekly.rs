//! The console's weekly hours editor: rows of weekday chips with time pairs,
//! written as an OpenStreetMap `opening_hours` string and read back from the
//! simple strings it writes. The string stays the one truth (the API's
//! `opening_hours`); the rows are only a way to edit it.
//!
//! A row is a set of weekdays with up to a few `open–close` pairs, or none
//! (closed those days). A weekday may appear in one row only: in OSM syntax a
//! later rule replaces an earlier one for the same day, which is not what a
//! person filling in rows expects. `24:00` is written as the close time
//! `00:00` (a time input cannot show 24:00); a close time before the open time
//! runs past midnight (`22:00-06:00`).

use std::fmt;

use super::hours::{HolidayCalendar, Hours, HoursState, SHANGHAI};
use super::site::ClosureInfo;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};

/// OSM's weekday names, Monday first.
pub const DAYS: [&str; 7] = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"];

/// The weekdays in Chinese, Monday first.
pub const DAYS_ZH: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];

/// One row of the editor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeekRow {
    /// Monday first.
    pub days: [bool; 7],
    /// `("09:00", "17:00")` pairs; `"00:00"` as a close time means midnight.
    pub times: Vec<(String, String)>,
}

/// The whole editor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Weekly {
    pub rows: Vec<WeekRow>,
    /// `PH off`: closed on public holidays.
    pub ph_off: bool,
}

/// Why rows cannot be written as `opening_hours` (the row is 0-based; the
/// message is in Chinese, for the person at the editor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyError {
    pub row: usize,
    pub message: String,
}

impl fmt::Display for WeeklyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "第{}行：{}", self.row + 1, self.message)
    }
}

fn hhmm(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

/// `Mo-Fr`, `Sa,Su`, `Mo,We,Fr`: runs of three or more as ranges.
fn days_text(days: &[bool; 7]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !days[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 7 && days[i + 1] {
            i += 1;
        }
        match i - start {
            0 => parts.push(DAYS[start].to_owned()),
            1 => parts.push(format!("{},{}", DAYS[start], DAYS[i])),
            _ => parts.push(format!("{}-{}", DAYS[start], DAYS[i])),
        }
        i += 1;
    }
    parts.join(",")
}

impl Weekly {
    /// Rows without a day and without a time are blank and left out.
    pub fn to_opening_hours(&self) -> Result<String, WeeklyError> {
        let mut seen = [false; 7];
        let mut rules = Vec::new();
        for (row, r) in self.rows.iter().enumerate() {
            let err = |message: String| WeeklyError { row, message };
            if !r.days.contains(&true) {
                if r.times.is_empty() {
                    continue;
                }
                return Err(err("请至少选择一天".into()));
            }
            for (d, on) in r.days.iter().enumerate() {
                if *on && std::mem::replace(&mut seen[d], true) {
                    return Err(err(format!("{}已在另一行中", DAYS_ZH[d])));
                }
            }
            let times = r
                .times
                .iter()
                .map(|(open, close)| {
                    let o =
                        hhmm(open).ok_or_else(|| err(format!("“{open}”不是有效时间（时:分）")))?;
                    let c = hhmm(close)
                        .ok_or_else(|| err(format!("“{close}”不是有效时间（时:分）")))?;
                    if o == c && c != NaiveTime::MIN {
                        return Err(err(format!("{open}-{close}：开门和关门时间相同")));
                    }
                    let close = if c == NaiveTime::MIN {
                        "24:00".to_owned()
                    } else {
                        c.format("%H:%M").to_string()
                    };
                    Ok(format!("{}-{close}", o.format("%H:%M")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let times = if times.is_empty() {
                "off".to_owned()
            } else {
                times.join(",")
            };
            rules.push(format!("{} {times}", days_text(&r.days)));
        }
        if rules.is_empty() {
            rules.push("off".to_owned());
        }
        if self.ph_off {
            rules.push("PH off".to_owned());
        }
        Ok(rules.join("; "))
    }

    /// The rows of a string this editor could have written; `None` for
    /// anything else (the raw field edits those).
    pub fn parse(s: &str) -> Option<Weekly> {
        let mut w = Weekly::default();
        for rule in s.split(';').map(str::trim) {
            if rule == "PH off" {
                w.ph_off = true;
                continue;
            }
            if rule == "off" {
                continue;
            }
            let (days, times) = rule.split_once(' ')?;
            let mut row = WeekRow::default();
            for part in days.split(',') {
                let (a, b) = part.split_once('-').unwrap_or((part, part));
                let a = DAYS.iter().position(|d| *d == a)?;
                let b = DAYS.iter().position(|d| *d == b)?;
                if b < a {
                    return None;
                }
                row.days[a..=b].iter_mut().for_each(|d| *d = true);
            }
            if times.trim() != "off" {
                for pair in times.split(',') {
                    let (o, c) = pair.trim().split_once('-')?;
                    let c = if c == "24:00" { "00:00" } else { c };
                    row.times.push((o.to_owned(), c.to_owned()));
                }
            }
            w.rows.push(row);
        }
        // Only what this editor writes, exactly: anything else is the raw field's.
        (w.to_opening_hours().ok()? == s.trim()).then_some(w)
    }
}

/// One day of the preview, in China time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayPreview {
    pub date: NaiveDate,
    /// The holiday's name when the day is a public holiday.
    pub holiday: Option<String>,
    /// A make-up workday (调休上班日).
    pub makeup_workday: bool,
    /// Open intervals as wall-clock `(from, to)`; `to` is `None` for midnight at the day's end.
    pub open: Vec<(NaiveTime, Option<NaiveTime>)>,
    /// A closure exception covers some of the day.
    pub closure: bool,
}

fn local_midnight(d: NaiveDate) -> DateTime<Utc> {
    SHANGHAI
        .from_local_datetime(&d.and_time(NaiveTime::MIN))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

/// `days` days from `from` as the hours and the closure exceptions make them
/// (the site's status is not applied: a temporarily closed site previews the
/// hours it will keep once it reopens). Hours that do not parse are closed.
pub fn preview(
    hours: Option<&Hours>,
    closure: &ClosureInfo,
    calendar: &HolidayCalendar,
    from: NaiveDate,
    days: u32,
) -> Vec<DayPreview> {
    let state = |t: DateTime<Utc>| {
        closure.state(t, |x| hours.map_or(HoursState::CLOSED, |h| h.evaluate(x)))
    };
    (0..days)
        .map(|i| {
            let date = from + TimeDelta::days(i64::from(i));
            let (start, end) = (
                local_midnight(date),
                local_midnight(date + TimeDelta::days(1)),
            );
            let mut open = Vec::new();
            let mut t = start;
            // Bounded: a day has at most a few dozen changes in any real expression.
            for _ in 0..200 {
                if t >= end {
                    break;
                }
                let st = state(t);
                let next = st.next_change.filter(|n| *n < end && *n > t).unwrap_or(end);
                if st.is_open {
                    let wall = |x: DateTime<Utc>| x.with_timezone(&SHANGHAI).time();
                    open.push((wall(t), (next < end).then(|| wall(next))));
                }
                t = next;
            }
            DayPreview {
                date,
                holiday: calendar.holiday_name(date).map(str::to_owned),
                makeup_workday: calendar.is_makeup_workday(date),
                open,
                closure: closure
                    .exceptions
                    .iter()
                    .any(|c| c.from < end && start < c.to),
            }
        })
        .collect()
}

/// The Chinese name of a weekday.
pub fn weekday_zh(d: Weekday) -> &'static str {
    DAYS_ZH[d.num_days_from_monday() as usize]
}

/// The Chinese weekday of a date.
pub fn date_weekday_zh(d: NaiveDate) -> &'static str {
    weekday_zh(d.weekday())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn row(days: &[usize], times: &[(&str, &str)]) -> WeekRow {
        let mut r = WeekRow::default();
        for d in days {
            r.days[*d] = true;
        }
        r.times = times
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        r
    }

    #[test]
    fn rows_are_written_as_opening_hours() {
        let w = Weekly {
            rows: vec![
                row(&[0, 1, 2, 3, 4], &[("09:00", "12:00"), ("14:00", "18:00")]),
                row(&[5, 6], &[("10:00", "00:00")]),
                row(&[], &[]),
            ],
            ph_off: true,
        };
        assert_eq!(
            w.to_opening_hours().unwrap(),
            "Mo-Fr 09:00-12:00,14:00-18:00; Sa,Su 10:00-24:00; PH off"
        );
        let w = Weekly {
            rows: vec![row(&[0, 2, 4], &[("22:00", "06:00")]), row(&[6], &[])],
            ph_off: false,
        };
        assert_eq!(
            w.to_opening_hours().unwrap(),
            "Mo,We,Fr 22:00-06:00; Su off"
        );
        assert_eq!(Weekly::default().to_opening_hours().unwrap(), "off");
        for s in [
            "Mo-Fr 09:00-12:00,14:00-18:00; Sa,Su 10:00-24:00; PH off",
            "Mo,We,Fr 22:00-06:00; Su off",
            "Mo-Su 00:00-24:00",
        ] {
            let w = Weekly::parse(s).expect(s);
            assert_eq!(w.to_opening_hours().unwrap(), s);
            Hours::validate(s).expect("what the editor writes is valid");
        }
    }

    #[test]
    fn refuses_what_a_person_would_not_mean() {
        let twice = Weekly {
            rows: vec![row(&[0], &[("09:00", "10:00")]), row(&[0, 1], &[])],
            ph_off: false,
        };
        assert_eq!(twice.to_opening_hours().unwrap_err().row, 1);
        let no_day = Weekly {
            rows: vec![row(&[], &[("09:00", "10:00")])],
            ph_off: false,
        };
        assert!(no_day.to_opening_hours().is_err());
        let bad = Weekly {
            rows: vec![row(&[3], &[("9", "10:00")])],
            ph_off: false,
        };
        assert!(
            bad.to_opening_hours()
                .unwrap_err()
                .message
                .contains("时:分")
        );
        let empty = Weekly {
            rows: vec![row(&[3], &[("10:00", "10:00")])],
            ph_off: false,
        };
        assert!(empty.to_opening_hours().is_err());
    }

    #[test]
    fn other_strings_are_left_to_the_raw_field() {
        for s in [
            "24/7",
            "Mo-Fr 09:00-17:00; Mo 10:00-11:00",
            "Su-Mo 09:00-10:00",
            "Mo 9:00-10:00",
        ] {
            assert_eq!(Weekly::parse(s), None, "{s}");
        }
    }

    #[test]
    fn preview_marks_holidays_makeup_days_and_closures() {
        let cal = Arc::new(HolidayCalendar::new(
            crate::domain::calendar::shipped_years(),
            1,
        ));
        let hours = Hours::parse("Mo-Fr 09:00-17:00; PH off", &cal).unwrap();
        // 2025-09-28 is a make-up Sunday; 2025-10-01.. is National Day.
        let from = NaiveDate::from_ymd_opt(2025, 9, 27).unwrap();
        let closure = ClosureInfo {
            exceptions: vec![crate::domain::site::Closure {
                from: local_midnight(from) + TimeDelta::hours(12),
                to: local_midnight(from + TimeDelta::days(3)) + TimeDelta::hours(12),
                reason: None,
            }],
            ..Default::default()
        };
        let days = preview(Some(&hours), &closure, &cal, from, 14);
        assert_eq!(days.len(), 14);
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        // Saturday: closed; Sunday 28th (make-up) is closed by the exception whole.
        assert!(days[0].open.is_empty() && !days[0].makeup_workday);
        assert!(days[1].makeup_workday && days[1].open.is_empty() && days[1].closure);
        // Tuesday 30th: the exception ends at noon: open 12–17.
        assert_eq!(days[3].open, vec![(t(12), Some(t(17)))]);
        assert!(days[4].holiday.is_some() && days[4].open.is_empty());
        // Thursday 9 October: an ordinary day.
        assert_eq!(days[12].open, vec![(t(9), Some(t(17)))]);
        let all = Hours::parse("Mo-Su 00:00-24:00", &cal).unwrap();
        let days = preview(Some(&all), &ClosureInfo::default(), &cal, from, 2);
        assert_eq!(days[0].open, vec![(t(0), None)]);
        let none = preview(None, &ClosureInfo::default(), &cal, from, 1);
        assert!(none[0].open.is_empty());
    }
}
