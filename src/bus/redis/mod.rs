//! The Redis side of scale-out: one resilient connection per pod ([`RedisLink`]), the
//! chat bus on it ([`RedisBus`]) and the socketioxide-redis adapter driver
//! ([`LinkDriver`]). The only users of the redis crate.

mod chat_bus;
mod driver;
mod link;

pub use chat_bus::{channel_for, BusTasks, RedisBus, GLOBAL_CHANNEL, ROOM_CHANNEL_PREFIX};
pub use driver::LinkDriver;
pub use link::{client_for, ChanItem, GapMarker, RedisLink, UrlError, HEARTBEAT};
