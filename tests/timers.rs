//! The chat's timers on a paused tokio clock (no waiting in real time): typing
//! indicators end after TYPING_TIMEOUT, "offline" comes PRESENCE_GRACE after a user's
//! last connection left, and a reconnect within the grace is silent; read receipts go
//! out at most once per user and room per second, the newest position last. One node: the
//! in-memory stores and no bus, driven through `ChatService` as the transports do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatwire::bus::LocalBus;
use chatwire::chat::{
    ChatEvent, ChatService, ChatSettings, ConnId, Delivery, LocalFanout, Recipients, Retention,
    RoomName, Sender, Status, Stores, Transport,
};
use chatwire::store::log::memory::MemoryLog;
use chatwire::store::memory::MemoryPresence;
use tokio_util::sync::CancellationToken;

const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
const GRACE: Duration = Duration::from_secs(5);

/// Every event the chat delivered locally, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<ChatEvent>>);

impl LocalFanout for Recorder {
    fn deliver(&self, delivery: &Delivery, _recipients: &Recipients<'_>) {
        self.0
            .lock()
            .expect("recorder")
            .push((*delivery.event).clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<ChatEvent> {
        std::mem::take(&mut *self.0.lock().expect("recorder"))
    }
}

fn chat() -> (Arc<ChatService>, Arc<Recorder>, CancellationToken) {
    let retention = Retention {
        limit: Some(100),
        ttl: Duration::from_secs(3600),
    };
    let log = Arc::new(MemoryLog::default());
    let chat = ChatService::new(
        Arc::new(LocalBus),
        Stores {
            log: log.clone(),
            presence: Arc::new(MemoryPresence::default()),
            keys: log.clone(),
            reads: log.clone(),
            reactions: log.clone(),
            channels: log,
        },
        ChatSettings {
            max_message_bytes: 65536,
            presence_grace: GRACE,
            presence_heartbeat: Duration::from_secs(10),
            typing_timeout: TYPING_TIMEOUT,
            retention,
        },
    );
    let recorder = Arc::new(Recorder::default());
    chat.set_fanouts(vec![recorder.clone()]);
    let stop = CancellationToken::new();
    tokio::spawn(chat.clone().run_background(stop.clone()));
    (chat, recorder, stop)
}

fn ann(conn: &str) -> Sender {
    Sender {
        user: "ann".into(),
        ..Sender::anonymous(ConnId::new(conn))
    }
}

fn room() -> RoomName {
    RoomName::parse("R").expect("room")
}

/// Lets spawned tasks run (the clock stays where it is).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// The presence statuses announced in `room` and in presence:global, in order.
fn presence(events: &[ChatEvent]) -> (Vec<Status>, Vec<Status>) {
    let statuses = |of: &RoomName| {
        events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Presence { status, room, .. } if room == of => Some(*status),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    (statuses(&room()), statuses(&RoomName::global_presence()))
}

#[tokio::test(start_paused = true)]
async fn a_typing_indicator_ends_after_the_timeout() {
    let (chat, recorder, stop) = chat();
    let sender = ann("c1");
    chat.connect(&sender, Transport::Ws, None);
    drop(chat.join(&sender, &room()).expect("join"));
    settle().await;
    chat.typing(&sender, &room(), true).expect("typing");
    recorder.take();

    tokio::time::advance(TYPING_TIMEOUT - Duration::from_secs(1)).await;
    settle().await;
    assert!(recorder.take().is_empty(), "not ended before the timeout");

    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    let ended: Vec<bool> = recorder
        .take()
        .into_iter()
        .filter_map(|e| match e {
            ChatEvent::Typing { typing, .. } => Some(typing),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [false]);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn offline_comes_after_the_grace_and_a_quick_reconnect_is_silent() {
    let (chat, recorder, stop) = chat();
    let first = ann("c1");
    chat.connect(&first, Transport::Ws, None);
    drop(chat.join(&first, &room()).expect("join"));
    settle().await;
    // The room and presence:global (every connection counts there) alike.
    let online = vec![Status::Online];
    assert_eq!(presence(&recorder.take()), (online.clone(), online));

    // Gone, and back within the grace on another connection: nothing to announce.
    chat.disconnect(&first.conn);
    settle().await;
    tokio::time::advance(GRACE / 2).await;
    let second = ann("c2");
    chat.connect(&second, Transport::Ws, None);
    drop(chat.join(&second, &room()).expect("join"));
    tokio::time::advance(GRACE).await;
    settle().await;
    assert_eq!(presence(&recorder.take()), (vec![], vec![]));

    // Gone for good: "offline" once the grace has passed, not before.
    chat.disconnect(&second.conn);
    settle().await;
    tokio::time::advance(GRACE - Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(presence(&recorder.take()), (vec![], vec![]));
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    let offline = vec![Status::Offline];
    assert_eq!(presence(&recorder.take()), (offline.clone(), offline));
    stop.cancel();
}

/// Each `receipt:update`'s (user, offset) pairs.
fn receipts(events: &[ChatEvent]) -> Vec<Vec<(String, u64)>> {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Receipt { receipts, .. } => Some(
                receipts
                    .iter()
                    .map(|r| (r.user.id.clone(), r.offset))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn read(user: &str, offset: u64) -> Vec<(String, u64)> {
    vec![(user.to_owned(), offset)]
}

#[tokio::test(start_paused = true)]
async fn receipts_go_out_once_a_second_with_the_newest_position() {
    let (chat, recorder, stop) = chat();
    let (reader, writer) = (
        ann("c1"),
        Sender {
            user: "bob".into(),
            ..Sender::anonymous(ConnId::new("c2"))
        },
    );
    let other = Sender {
        user: "cy".into(),
        ..Sender::anonymous(ConnId::new("c3"))
    };
    for sender in [&reader, &writer, &other] {
        chat.connect(sender, Transport::Ws, None);
        drop(chat.join(sender, &room()).expect("join"));
    }
    for i in 0..5 {
        let posted = chat
            .post(&writer, Some(room()), format!("m{i}"))
            .expect("post");
        posted.stored().await.expect("stored");
    }
    settle().await;
    recorder.take();

    // The first goes at once; the next ones within the room's second wait, and only
    // each user's newest goes when it ends, all in one update.
    for offset in [1, 2, 3] {
        assert_eq!(
            chat.mark_read(&reader, &room(), offset)
                .await
                .expect("read"),
            offset
        );
    }
    assert_eq!(chat.mark_read(&other, &room(), 4).await.expect("read"), 4);
    settle().await;
    assert_eq!(receipts(&recorder.take()), [read("ann", 1)]);
    tokio::time::advance(Duration::from_millis(900)).await;
    settle().await;
    assert_eq!(receipts(&recorder.take()), [] as [Vec<_>; 0]);
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(
        receipts(&recorder.take()),
        [vec![("ann".to_owned(), 3), ("cy".to_owned(), 4)]]
    );

    // A position never moves back (and a repeat says nothing); past the end is the end.
    assert_eq!(chat.mark_read(&reader, &room(), 2).await.expect("read"), 3);
    assert_eq!(chat.mark_read(&reader, &room(), 3).await.expect("read"), 3);
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(receipts(&recorder.take()), [] as [Vec<_>; 0]);
    assert_eq!(chat.mark_read(&reader, &room(), 99).await.expect("read"), 5);
    settle().await;
    assert_eq!(receipts(&recorder.take()), [read("ann", 5)]);
    let unread = chat.unread(&reader, &room()).await.expect("unread");
    assert_eq!(
        (unread.read_offset, unread.unread, unread.last_offset),
        (5, 0, 5)
    );
    let unread = chat.unread(&writer, &room()).await.expect("unread");
    assert_eq!(
        (unread.read_offset, unread.unread),
        (0, 0),
        "own messages are read"
    );
    stop.cancel();
}
