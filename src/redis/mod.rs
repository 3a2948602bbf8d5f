//! The one Redis connection of a pod ([`RedisLink`]), shared by the bus and the presence
//! store, which never import each other. With `bus/redis` and `store/redis`, the only
//! users of the redis crate.

mod link;

pub use link::{client_for, ChanItem, LinkError, RedisLink, Route, UrlError, HEARTBEAT};
