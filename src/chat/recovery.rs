//! The chat's reads of its message log: anchoring a room's order when it gets its first
//! local member, filling gaps (a message arrived early, the bus lost some), recovery by
//! offset (`room:join {since}`), and the retention prune.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    now_ms, BusStatus, ChatError, ChatEvent, ChatService, Delivery, Encodings, Message, MessageRef,
    Receipt, RoomName, Sender, StoreError,
};
use crate::telemetry::metrics;

/// How long an early message waits for the missing ones before the log is asked.
pub const GAP_WAIT: Duration = Duration::from_millis(100);
/// Messages one fill reads at a time.
const FILL_PAGE: usize = 500;
/// Most messages a recovery hands over; a client further behind gets `recovered:false`
/// and pages the history.
pub const MAX_RECOVERED: usize = 1000;
/// How long a join waits for its room's anchor before answering anyway.
const ANCHOR_WAIT: Duration = Duration::from_secs(5);
/// How long a recovery waits for this pod to catch up with the client's offset.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);
/// How often the retention prune runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the bus's loss count is read.
const LOSS_CHECK_EVERY: Duration = Duration::from_millis(200);
/// Fill attempts that find nothing new before the missing offsets are skipped.
const STALLS_BEFORE_SKIP: usize = 3;

impl ChatService {
    /// The receipt of a room's first local member: settles once the bus subscription
    /// is in place and the room is anchored at the log's last offset (read after the
    /// subscription, so nothing stored later can be missed here).
    pub(super) fn anchoring(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        subscribed: Receipt,
        anchored: watch::Receiver<bool>,
    ) -> Receipt {
        self.announce_join(sender, room);
        let (chat, room) = (self.clone(), room.clone());
        let (settle, receipt) = Receipt::pending();
        // Its own task: the anchor must be set even if no one waits for the receipt.
        tokio::spawn(async move {
            let outcome = subscribed.outcome().await;
            chat.anchor(&room).await;
            let _ = settle.send(outcome);
        });
        self.once_anchored(receipt, Some(anchored))
    }

    /// `receipt`, settling no earlier than the room's anchor (or [`ANCHOR_WAIT`]).
    pub(super) fn once_anchored(
        &self,
        receipt: Receipt,
        anchored: Option<watch::Receiver<bool>>,
    ) -> Receipt {
        let Some(mut anchored) = anchored else {
            return receipt;
        };
        Receipt::from_future(Box::pin(async move {
            let outcome = receipt.outcome().await;
            let _ = tokio::time::timeout(ANCHOR_WAIT, anchored.wait_for(|a| *a)).await;
            outcome
        }))
    }

    /// Reads `room`'s last offset (retrying while the room has members) and anchors it.
    async fn anchor(self: &Arc<Self>, room: &RoomName) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.sequences(room).anchored(room).is_none() {
                return;
            }
            match self.log.bounds(room).await {
                Ok(bounds) => {
                    let mut order = self.sequences(room);
                    let offered = order.anchor(room, bounds.last);
                    for ready in &offered.ready {
                        self.fan_out(ready, Some(room));
                    }
                    drop(order);
                    if offered.fill {
                        self.start_fill(room.clone());
                    }
                    return;
                }
                Err(e) => {
                    debug!(%room, error = %e, "room anchor not read; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Starts a task reading `room`'s missing messages from the log.
    pub(super) fn start_fill(&self, room: RoomName) {
        if let Some(chat) = self.me.upgrade() {
            tokio::spawn(async move { chat.fill(room).await });
        }
    }

    /// Reads the log until `room` misses nothing: after [`GAP_WAIT`] (the missing ones
    /// may simply be late), page by page, handing on what is in turn.
    async fn fill(self: Arc<Self>, room: RoomName) {
        tokio::time::sleep(GAP_WAIT).await;
        let (mut stalls, mut backoff) = (0, GAP_WAIT);
        loop {
            let Some(next) = self.sequences(&room).missing(&room) else {
                return;
            };
            let read = self.log.after(&room, next - 1, FILL_PAGE).await;
            let messages = match read {
                Ok(messages) => messages,
                Err(e) => {
                    debug!(%room, error = %e, "gap fill read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let progressed = self.apply_fill(&room, next, messages);
            if progressed {
                stalls = 0;
                metrics::gap_filled();
                continue;
            }
            stalls += 1;
            if stalls >= STALLS_BEFORE_SKIP {
                // Early messages wait for offsets the log does not have: move on.
                let skipped = {
                    let mut order = self.sequences(&room);
                    let offered = order.skip(&room, None);
                    for ready in &offered.ready {
                        self.fan_out(ready, Some(&room));
                    }
                    !offered.ready.is_empty()
                };
                if skipped {
                    warn!(%room, from = next, "messages the log does not have skipped");
                    metrics::gap_skipped();
                }
                stalls = 0;
            }
            tokio::time::sleep(GAP_WAIT).await;
        }
    }

    /// Hands on what a fill read (`messages`, after offset `next` - 1); whether the room
    /// moved past `next`.
    fn apply_fill(&self, room: &RoomName, next: u64, messages: Vec<Message>) -> bool {
        let first = messages.first().and_then(|m| m.offset);
        let complete = messages.len() < FILL_PAGE;
        let mut order = self.sequences(room);
        if first.is_some_and(|f| f > next) {
            // The log no longer has the missing ones: continue from what it has.
            warn!(%room, from = next, to = ?first, "messages missing from the log skipped");
            metrics::gap_skipped();
            let offered = order.skip(room, first);
            for ready in &offered.ready {
                self.fan_out(ready, Some(room));
            }
        }
        for message in messages {
            // A message posted here keeps skipping its sender.
            let origin = self.posting().origin(&message.id);
            let delivery = stored_delivery(message, origin);
            let Some(offset) = delivery.event.as_message().and_then(|m| m.offset) else {
                continue;
            };
            for ready in &order.offer(room, offset, &delivery).ready {
                self.fan_out(ready, Some(room));
            }
        }
        if complete {
            order.caught_up(room);
        }
        order.next(room).is_some_and(|n| n > next)
    }

    /// Joins `room` and hands over what the connection missed after `since` (an offset,
    /// or a message id): `attach(messages, recovered)` runs while no delivery to the
    /// room can slip in, and must queue `messages` and then subscribe the connection to
    /// live delivery. The messages are exactly the stored ones after `since`, in offset
    /// order, up to where live delivery starts. `recovered` is false (with no messages)
    /// only when the log no longer keeps them all, `since` is unknown, or the client is
    /// more than [`MAX_RECOVERED`] behind: the client then pages history. On an error,
    /// `attach` has not run.
    pub async fn recover(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        since: MessageRef,
        attach: impl FnOnce(Vec<Message>, bool),
    ) -> Result<(), ChatError> {
        let epoch = self
            .channel_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        self.admits(sender, room).await?;
        let receipt = self.enter(sender, room)?;
        if self
            .channel_epoch
            .load(std::sync::atomic::Ordering::Acquire)
            != epoch
        {
            if let Err(e) = self.admits(sender, room).await {
                self.leave(sender, room);
                return Err(e);
            }
        }
        if let Err(e) = receipt.outcome().await {
            debug!(error = %e, "recovering without a confirmed subscription");
        }
        let since = match self.log.offset_of(room, since).await {
            Ok(found) => found,
            Err(e) => {
                self.leave(sender, room);
                return Err(e.into());
            }
        };
        let mut progress = Progress {
            upto: since.unwrap_or(0),
            missed: Vec::new(),
            deadline: tokio::time::Instant::now() + CATCH_UP_WAIT,
        };
        loop {
            let read = match since {
                Some(_) => self.read_up_to(room, &mut progress).await,
                None => Ok(None),
            };
            match read {
                Ok(Some(next)) => {
                    let order = self.sequences(room);
                    if order.next(room) != Some(next) {
                        // Handed on more meanwhile: read those too.
                        continue;
                    }
                    if !self.membership().is_member(&sender.conn, room) {
                        return Err(removed_meanwhile(room));
                    }
                    attach(progress.missed, true);
                    self.go_live(&sender.conn, room);
                    return Ok(());
                }
                Ok(None) => {
                    let _order = self.sequences(room);
                    if !self.membership().is_member(&sender.conn, room) {
                        return Err(removed_meanwhile(room));
                    }
                    attach(Vec::new(), false);
                    self.go_live(&sender.conn, room);
                    return Ok(());
                }
                Err(e) => {
                    self.leave(sender, room);
                    return Err(e);
                }
            }
        }
    }

    /// Reads the log after `progress.upto` up to this pod's live position; returns that
    /// position (the next offset to be handed on) once `progress.missed` holds
    /// everything before it, or `None` when the missed messages cannot all be given.
    async fn read_up_to(
        self: &Arc<Self>,
        room: &RoomName,
        progress: &mut Progress,
    ) -> Result<Option<u64>, ChatError> {
        loop {
            let Some(next) = self.sequences(room).next(room) else {
                return Err(StoreError::Unavailable(
                    "the room's place in the log is unknown".into(),
                )
                .into());
            };
            let upto = progress.upto;
            if upto + 1 == next {
                return Ok(Some(next));
            }
            if upto + 1 < next {
                // HISTORY_LIMIT holds at once, whenever the prune last ran.
                let kept = self.settings.retention.limit.map_or(u64::MAX, |l| l as u64);
                if progress.missed.is_empty() && next - 1 - upto > kept {
                    return Ok(None);
                }
                let room_left = MAX_RECOVERED + 1 - progress.missed.len();
                let want = ((next - 1 - upto) as usize).min(room_left);
                let page = self.log.after(room, upto, want).await?;
                if page.first().and_then(|m| m.offset) != Some(upto + 1) {
                    // Pruned: the log no longer has all of them.
                    return Ok(None);
                }
                progress.upto = page.last().and_then(|m| m.offset).unwrap_or(upto);
                progress.missed.extend(page);
                if progress.missed.len() > MAX_RECOVERED {
                    return Ok(None);
                }
                continue;
            }
            // The client saw messages this pod has not handed on yet (in flight, or the
            // client's offsets are not this log's).
            if self.log.bounds(room).await?.last < upto
                || tokio::time::Instant::now() >= progress.deadline
            {
                return Ok(None);
            }
            let lagging = self.sequences(room).lag(room);
            if lagging {
                self.start_fill(room.clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Watches the bus for losses (a dropped connection, a full inbound queue): once it
    /// is back, every room with local members reads the log for what it missed. Also
    /// prunes the log by the retention. Runs until `cancel`.
    pub(super) async fn watch_log(self: Arc<Self>, cancel: CancellationToken) {
        let mut seen = self.bus.losses();
        let mut check = tokio::time::interval(LOSS_CHECK_EVERY);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = check.tick() => {
                    let losses = self.bus.losses();
                    if losses == seen || self.bus.status() != BusStatus::Up {
                        continue;
                    }
                    seen = losses;
                    if let Err(e) = self.bus.settled().outcome().await {
                        debug!(error = %e, "bus not settled after a loss");
                    }
                    let rooms = self.all_lost();
                    info!(rooms = rooms.len(), "the bus lost messages; reading the log");
                    for room in rooms {
                        self.start_fill(room);
                    }
                }
                _ = prune.tick() => match self.log.prune(self.settings.retention, now_ms()).await {
                    Ok(0) => {}
                    Ok(removed) => info!(removed, "message log pruned"),
                    Err(e) => debug!(error = %e, "message log prune failed"),
                },
            }
        }
    }
}

/// How far a recovery has read.
struct Progress {
    /// The last offset read.
    upto: u64,
    /// What was read, in offset order.
    missed: Vec<Message>,
    /// When to stop waiting for this pod to reach the client's offset.
    deadline: tokio::time::Instant,
}

/// A delivery of `message` read back from the log (sent by `origin`, if here).
fn stored_delivery(message: Message, origin: Option<super::ConnId>) -> Delivery {
    let json = message.to_json();
    Delivery {
        event: Arc::new(ChatEvent::Message {
            message: Arc::new(message),
        }),
        origin,
        encoded: Arc::new(Encodings::with_message(json)),
    }
}

/// A recovery whose connection left the room before the hand-over (a channel change
/// no longer admits it): nothing is handed over.
fn removed_meanwhile(room: &RoomName) -> ChatError {
    ChatError::Forbidden(format!("removed from room {room} while joining"))
}
