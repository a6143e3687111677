//! yizhan (驿站): the registry, map and booking backend behind trade-union
//! workers' phone apps. See `README.md` for who uses it and how to run it.
//!
//! `main.rs` only parses the command line; everything it runs lives here so that
//! tests and benchmarks start the real service on port 0.

pub mod auth;
pub mod config;
pub mod console;
pub mod domain;
pub mod error;
/// Fuzz targets (`fuzz/`, `tests/fuzz.rs`): not part of the service.
#[doc(hidden)]
pub mod fuzzing;
pub mod geodata;
pub mod holidays;
pub mod http;
pub mod index;
pub mod logpipe;
pub mod metrics;
pub mod notify;
pub mod push;
pub mod ratelimit;
pub mod service;
pub mod sms;
pub mod store;
pub mod wechat;
pub mod worker;

pub use http::{AppState, app};
pub use service::{Service, serve};
