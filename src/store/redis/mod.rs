//! The chat's temporary state in Redis, across pods: presence with per-pod liveness
//! ([`RedisPresence`]). Messages live in the message log ([`super::log`]).

mod presence;

pub use presence::RedisPresence;

use crate::chat::StoreError;
use crate::redis::LinkError;

impl From<LinkError> for StoreError {
    fn from(e: LinkError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
