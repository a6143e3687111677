//! Pure domain types: no HTTP, no SQL.

pub mod coords;
pub mod hours;
pub mod site;
pub mod user;
