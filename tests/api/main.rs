//! Black-box API tests: real HTTP on loopback against a real SQLite file.

mod accounts;
mod authz;
mod clusters;
mod console;
mod draws;
mod events;
mod failover;
mod feed;
mod helpers;
mod holidays;
mod malformed;
mod map;
mod notifications;
mod push;
mod search;
mod sites;
mod sms;
mod unions;
mod wechat;
mod worker;
