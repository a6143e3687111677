//! Pure domain types: no HTTP, no SQL.

pub mod calendar;
pub mod coords;
pub mod event;
pub mod hours;
pub(crate) mod id;
pub mod site;
pub mod user;
