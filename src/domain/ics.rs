//! A booking as a calendar entry (RFC 5545) for the phone's calendar, in
//! Asia/Shanghai time, written by the `icalendar` crate.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, CalendarDateTime, Component, EventLike};

use super::event::{Booking, BookingStatus, Event};
use super::hours::SHANGHAI;

/// The VTIMEZONE the entries refer to: China has kept UTC+8 without daylight
/// saving since 1991.
const SHANGHAI_VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\nTZID:Asia/Shanghai\r\nBEGIN:STANDARD\r\n\
DTSTART:19910915T000000\r\nTZOFFSETFROM:+0800\r\nTZOFFSETTO:+0800\r\nTZNAME:CST\r\n\
END:STANDARD\r\nEND:VTIMEZONE\r\n";

/// An RFC 5545 calendar with one entry for `booking` of `event`, held at `location`.
pub fn booking_ics(booking: &Booking, event: &Event, location: &str, now: DateTime<Utc>) -> String {
    let local = |t: DateTime<Utc>| CalendarDateTime::WithTimezone {
        date_time: t.with_timezone(&SHANGHAI).naive_local(),
        tzid: "Asia/Shanghai".to_owned(),
    };
    let d = &event.draft;
    let status = match booking.status {
        BookingStatus::Confirmed | BookingStatus::CheckedIn => icalendar::EventStatus::Confirmed,
        BookingStatus::Waitlisted | BookingStatus::Offered => icalendar::EventStatus::Tentative,
        BookingStatus::Cancelled | BookingStatus::NoShow => icalendar::EventStatus::Cancelled,
    };
    let entry = icalendar::Event::new()
        .uid(&format!("{}@yizhan", booking.id))
        .timestamp(now)
        .summary(&d.title)
        .description(&d.description)
        .location(location)
        .starts(local(d.starts_at))
        .ends(local(d.ends_at))
        .status(status)
        .add_property("GEO", format!("{:.6};{:.6}", d.lat, d.lon))
        .done();
    let text = Calendar::new()
        .name(&d.title)
        .push(entry)
        .done()
        .to_string();
    // The crate writes VEVENTs only; the zone they name goes before them.
    match text.find("BEGIN:VEVENT") {
        Some(i) => format!("{}{SHANGHAI_VTIMEZONE}{}", &text[..i], &text[i..]),
        None => text,
    }
}
