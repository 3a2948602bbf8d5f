//! [`MemoryBus`]: the bus between several pods in one process (multi-pod tests without
//! redis-server). Each pod's handle delivers what it publishes, in order, at once, to the
//! [`Inbound`] of every other pod interested in the room.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures_util::future::BoxFuture;

use crate::chat::{
    Asked, Bus, BusError, BusStatus, Delivery, Inbound, PodConnections, Receipt, RoomName,
};

/// The pods joined by one in-process bus.
#[derive(Default, Clone)]
pub struct MemoryHub {
    pods: Arc<Mutex<HashMap<usize, Pod>>>,
}

struct Pod {
    inbound: Option<Weak<dyn Inbound>>,
    rooms: HashSet<RoomName>,
}

impl MemoryHub {
    fn lock(&self) -> MutexGuard<'_, HashMap<usize, Pod>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pod on this bus.
    pub fn pod(&self) -> MemoryBus {
        let mut pods = self.lock();
        let id = pods.keys().max().map_or(0, |n| n + 1);
        pods.insert(
            id,
            Pod {
                inbound: None,
                rooms: HashSet::new(),
            },
        );
        MemoryBus {
            hub: self.clone(),
            id,
        }
    }
}

/// One pod's handle on a [`MemoryHub`].
pub struct MemoryBus {
    hub: MemoryHub,
    id: usize,
}

impl MemoryBus {
    /// Where this pod takes other pods' deliveries (held weakly: a stopped pod's chat
    /// is not kept alive).
    pub fn attach(&self, inbound: Weak<dyn Inbound>) {
        if let Some(pod) = self.hub.lock().get_mut(&self.id) {
            pod.inbound = Some(inbound);
        }
    }
}

impl Drop for MemoryBus {
    fn drop(&mut self) {
        self.hub.lock().remove(&self.id);
    }
}

impl Bus for MemoryBus {
    fn publish(&self, delivery: &Delivery) -> Receipt {
        let room = delivery.event.room();
        // Collected first: an inbound never runs under the hub's lock.
        let targets: Vec<Arc<dyn Inbound>> = self
            .hub
            .lock()
            .iter()
            .filter(|(id, pod)| **id != self.id && room.is_none_or(|r| pod.rooms.contains(r)))
            .filter_map(|(_, pod)| pod.inbound.as_ref().and_then(Weak::upgrade))
            .collect();
        // The same event and encodings: another pod never encodes it again.
        let remote = Delivery {
            event: delivery.event.clone(),
            origin: None,
            encoded: delivery.encoded.clone(),
        };
        for inbound in targets {
            inbound.deliver(&remote);
        }
        Receipt::ready(Ok(()))
    }

    fn interest(&self, room: &RoomName, interested: bool) -> Receipt {
        if let Some(pod) = self.hub.lock().get_mut(&self.id) {
            if interested {
                pod.rooms.insert(room.clone());
            } else {
                pod.rooms.remove(room);
            }
        }
        Receipt::ready(Ok(()))
    }

    fn settled(&self) -> Receipt {
        Receipt::ready(Ok(()))
    }

    fn status(&self) -> BusStatus {
        BusStatus::Up
    }

    fn pod_id(&self) -> String {
        format!("pod-{}", self.id)
    }

    fn ask_connections<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Asked, BusError>> {
        let others: Vec<(usize, Arc<dyn Inbound>)> = self
            .hub
            .lock()
            .iter()
            .filter(|(id, _)| **id != self.id)
            .filter_map(|(id, pod)| Some((*id, pod.inbound.as_ref()?.upgrade()?)))
            .collect();
        let answers = others
            .into_iter()
            .map(|(id, inbound)| PodConnections {
                pod: format!("pod-{id}"),
                connections: inbound.connections_of(user),
            })
            .collect();
        Box::pin(std::future::ready(Ok(Asked {
            answers,
            complete: true,
        })))
    }
}
