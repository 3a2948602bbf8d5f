//! The socketioxide-redis [`Driver`] over chatwire's [`RedisLink`]: socket.io's cluster
//! operations (fetching sockets and rooms, disconnecting across pods) share the pod's
//! resilient connection instead of the stock driver's, which neither starts without
//! Redis nor reconnects.

use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use crate::redis::{ChanItem as LinkItem, LinkError, RedisLink, Route};

/// socketioxide-redis driver on a [`RedisLink`]. The socket.io Redis emitter publishes
/// its requests (JSON) on the adapter's request channel (msgpack): with `emitter_requests`
/// set, the link hands the emitter's to it (in the order Redis sent them, with the
/// emitter's broadcasts) and only the adapter's to the adapter.
#[derive(Clone)]
pub struct LinkDriver {
    /// The pod's Redis link.
    pub link: RedisLink,
    /// Where the emitter's requests go (none: REDIS_EMITTER is off).
    pub emitter_requests: Option<mpsc::Sender<LinkItem>>,
}

/// The request channel the emitter shares with the adapter (namespace "/", key
/// "socket.io").
pub const SHARED_REQUEST_CHANNEL: &str = "socket.io-request#/#";

impl Driver for LinkDriver {
    type Error = LinkError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), LinkError> {
        self.link
            .query::<redis::Value>(redis::cmd("PUBLISH").arg(chan).arg(val))
            .await
            .map(drop)
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, LinkError> {
        let (tx, rx) = mpsc::channel(size.max(1));
        let route = match &self.emitter_requests {
            Some(emitter) if chan == SHARED_REQUEST_CHANNEL => Route::Split {
                json: emitter.clone(),
                other: tx,
            },
            _ => Route::One(tx),
        };
        // A failed SUBSCRIBE is retried when the link comes back: the adapter still starts.
        if let Err(e) = self.link.subscribe_route(chan, route).await {
            tracing::debug!(error = %e, "adapter subscribe deferred");
        }
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), LinkError> {
        self.link.unsubscribe(&chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, LinkError> {
        let (_, count): (String, u16) = self
            .link
            .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(chan))
            .await?;
        Ok(count)
    }
}
