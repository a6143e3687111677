//! Black-box API tests: real HTTP on loopback against a real SQLite file.

mod helpers;
mod malformed;
mod sites;
