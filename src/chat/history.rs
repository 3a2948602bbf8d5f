//! History rules: how long a room's messages are kept, and the time a message id
//! carries (ids are UUID v7, so they sort by creation time).

use uuid::Uuid;

/// Retention of each room's history, applied by the log's background prune.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Most messages kept per room (HISTORY_LIMIT; `None`: no count limit).
    pub limit: Option<usize>,
    /// Longest a message is kept (HISTORY_TTL).
    pub ttl: std::time::Duration,
}

impl Retention {
    /// The oldest creation time (Unix ms) still kept at `now_ms`.
    pub fn cutoff_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.ttl.as_millis() as u64)
    }
}

/// Unix milliseconds encoded in a UUID v7 (0 for other versions).
pub fn message_ms(id: &Uuid) -> u64 {
    id.get_timestamp().map_or(0, |ts| {
        let (secs, nanos) = ts.to_unix();
        secs * 1000 + u64::from(nanos) / 1_000_000
    })
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
