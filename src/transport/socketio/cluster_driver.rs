//! The socketioxide-redis [`Driver`] over chatwire's [`RedisLink`]: socket.io's cluster
//! operations (fetching sockets and rooms, disconnecting across pods) share the pod's
//! resilient connection instead of the stock driver's, which neither starts without
//! Redis nor reconnects.

use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use crate::redis::{LinkError, RedisLink};

/// socketioxide-redis driver on a [`RedisLink`].
#[derive(Clone)]
pub struct LinkDriver(pub RedisLink);

impl Driver for LinkDriver {
    type Error = LinkError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), LinkError> {
        self.0
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
        // A failed SUBSCRIBE is retried when the link comes back: the adapter still starts.
        if let Err(e) = self.0.subscribe(chan, tx).await {
            tracing::debug!(error = %e, "adapter subscribe deferred");
        }
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), LinkError> {
        self.0.unsubscribe(&chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, LinkError> {
        let (_, count): (String, u16) = self
            .0
            .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(chan))
            .await?;
        Ok(count)
    }
}
