//! Pure domain types and rules: no HTTP, no SQL, no clock.

pub mod application;
pub mod booking;
pub mod calendar;
pub mod checkin;
pub mod coords;
pub mod draw;
pub mod event;
pub mod hours;
pub mod ics;
pub(crate) mod id;
pub mod idempotency;
pub mod notify;
pub mod otp;
pub mod push;
pub mod retry;
pub mod secret;
pub mod site;
pub mod sms;
pub mod timestamp;
pub mod union;
pub mod user;
pub mod wechat;
pub mod weekly;
