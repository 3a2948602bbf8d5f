//! The one Redis connection of a pod ([`RedisLink`]), shared by the bus and the presence
//! store, which never import each other, and the pods' address book ([`PodAddresses`],
//! for forwarding engine.io sessions to their pod). With `bus/redis` and `store/redis`,
//! the only users of the redis crate.

mod link;
mod pod_addresses;

pub use link::{client_for, ChanItem, LinkError, RedisLink, Route, UrlError, HEARTBEAT};
pub use pod_addresses::{PodAddresses, ADDRESS_TTL};
