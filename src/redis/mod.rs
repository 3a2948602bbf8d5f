//! The one Redis connection of a pod ([`RedisLink`]) and the key layout of what chatwire
//! keeps in Redis ([`history`]), shared by the bus and the stores, which never import
//! each other. With `bus/redis` and `store/redis`, the only users of the redis crate.

pub mod history;
mod link;

pub use link::{client_for, ChanItem, GapMarker, LinkError, RedisLink, UrlError, HEARTBEAT};
