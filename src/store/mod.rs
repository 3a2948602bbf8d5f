//! The chat's stores: the message log ([`log`]: memory, SQLite, PostgreSQL) and presence
//! ([`memory`] on one node or in-process clusters, [`redis`] across pods). Only these
//! implementations know tables and keys.

pub mod log;
pub mod memory;
pub mod redis;
