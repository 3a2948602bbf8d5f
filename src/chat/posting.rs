//! Messages posted on this pod and not yet handed on: who sent each (so a copy read back
//! from the log by a gap fill still skips its sender) and where its publish receipt
//! goes (the sender's ack says whether other pods got it). Bounded: the oldest entries
//! are forgotten first.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;
use uuid::Uuid;

use super::{ConnId, Receipt};

/// Entries kept at most (well above the log's append queue).
pub const MAX_POSTING: usize = 65_536;

struct Entry {
    origin: Option<ConnId>,
    published: Option<oneshot::Sender<Receipt>>,
}

/// The posted messages by id.
#[derive(Default)]
pub struct Posting {
    entries: HashMap<Uuid, Entry>,
    order: VecDeque<Uuid>,
}

impl Posting {
    /// Remembers message `id`, sent by `origin` (`None`: by the server API); its receipt
    /// goes to `published`.
    pub fn insert(
        &mut self,
        id: Uuid,
        origin: Option<ConnId>,
        published: oneshot::Sender<Receipt>,
    ) {
        while self.order.len() >= MAX_POSTING {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.order.push_back(id);
        let published = Some(published);
        self.entries.insert(id, Entry { origin, published });
    }

    /// The sender of message `id`, if it was posted here and is not handed on yet.
    pub fn origin(&self, id: &Uuid) -> Option<ConnId> {
        self.entries.get(id).and_then(|e| e.origin.clone())
    }

    /// Forgets message `id` (handed on, or not stored); where its receipt goes.
    pub fn remove(&mut self, id: &Uuid) -> Option<oneshot::Sender<Receipt>> {
        let entry = self.entries.remove(id)?;
        if self.order.front() == Some(id) {
            self.order.pop_front();
        }
        entry.published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_bounded_and_found_until_removed() {
        let mut posting = Posting::default();
        let first = Uuid::now_v7();
        let (tx, _rx) = oneshot::channel();
        posting.insert(first, Some(ConnId::new("c")), tx);
        assert_eq!(posting.origin(&first), Some(ConnId::new("c")));
        assert!(posting.remove(&first).is_some());
        assert_eq!(posting.origin(&first), None);
        for _ in 0..MAX_POSTING + 5 {
            let (tx, _rx) = oneshot::channel();
            posting.insert(Uuid::now_v7(), Some(ConnId::new("c")), tx);
        }
        assert!(posting.entries.len() <= MAX_POSTING);
    }
}
