//! The chat's stores in Redis, across pods: room histories ([`RedisHistory`]) and
//! presence with per-pod liveness ([`RedisPresence`]).

mod history;
mod presence;

pub use history::RedisHistory;
pub use presence::RedisPresence;

use crate::chat::StoreError;
use crate::redis::LinkError;

impl From<LinkError> for StoreError {
    fn from(e: LinkError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
