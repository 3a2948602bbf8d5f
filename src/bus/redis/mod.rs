//! The chat bus over Redis pub/sub ([`RedisBus`]), on the pod's [`crate::redis::RedisLink`],
//! and what the socket.io Redis emitter publishes ([`emitter`]).

mod chat_bus;
pub mod emitter;

pub use chat_bus::{channel_for, BusTasks, RedisBus, GLOBAL_CHANNEL, ROOM_CHANNEL_PREFIX};

use crate::chat::BusError;
use crate::redis::LinkError;

impl From<LinkError> for BusError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Unavailable => BusError::Unavailable,
            LinkError::Timeout => BusError::Timeout,
            LinkError::Backend(reason) => BusError::Backend(reason),
        }
    }
}
