//! The chat domain: rooms, membership, the message model and its validation, presence,
//! typing, the order of each room's messages, history and recovery by offset, and the
//! [`ChatService`] both transports call.
//! It owns its seams: transports implement [`LocalFanout`]; `bus/` and `store/`
//! implement the [`ports`]. No axum, socketioxide, redis or wire framing in here, and
//! no import of `transport`, `bus`, `store` or `redis` (tests/layering.rs checks).

mod announce;
mod backend;
mod channels;
mod delivery;
mod directory;
mod error;
mod event;
mod history;
mod membership;
mod message;
mod policy;
pub mod ports;
mod posting;
mod presence;
mod reactions;
mod receipts;
mod recovery;
mod room;
mod search;
mod sequence;
mod service;
mod threads;
mod typing;

pub use backend::{Publication, Published, IDEMPOTENCY_WINDOW, MAX_IDEMPOTENCY_KEY, MAX_REASON};
pub use channels::{
    Actor, Channel, ChannelChange, NewChannel, MAX_CHANNEL_MEMBERS, MAX_CHANNEL_PAGE,
    MAX_TITLE_CHARS, MAX_TOPIC_CHARS, SERVER_CREATOR,
};
pub use delivery::{Delivery, Encodings, Form, LocalFanout};
pub use error::{excerpt, ChatError, ErrorCode};
pub use event::{ChatEvent, Status, UserRef};
pub use history::{message_ms, now_ms, Retention};
pub use membership::{
    ConnId, Departed, Interest, Mailbox, Member, Membership, MembershipCounts, NewConnection,
    Recipients, Selection, Transport, UserConnection,
};
pub use message::{
    ms_of_rfc3339, now_rfc3339, rfc3339_of_ms, Message, MessageType, ThreadRef, SERVER_SENDER,
};
pub use policy::{display_name, RoomPattern, Sender, MAX_DISPLAY_NAME_CHARS, USER_ROOM_PREFIX};
pub use ports::{
    Appended, Asked, Bus, BusError, BusStatus, Channels, Claim, Committed, ConnectionChange, Draft,
    Happened, HistoryPage, Inbound, MessageFilter, MessageLog, MessageRef, Observer,
    PodConnections, PresenceChanges, PresenceState, PresenceStore, ReactionCounts, Reactions,
    ReadPositions, Receipt, RequestKeys, RoomBounds, RoomsCommand, StoreError, Stored,
    ThreadSummary, Unread, Unstored, Verdict, ANONYMOUS_POSITION_TTL_MS, LOCAL_POD,
    MAX_EMOJIS_PER_MESSAGE, MAX_UNREAD_COUNT,
};
pub use reactions::{emoji, MAX_EMOJI_BYTES};
pub use receipts::{ReadReceipt, MAX_RECEIPTS_PER_UPDATE, MAX_UNREAD_ROOMS, RECEIPT_EVERY};
pub use recovery::{GAP_WAIT, MAX_RECOVERED};
pub use room::{
    thread_room, thread_root, RoomName, GLOBAL_PRESENCE_ROOM, MAX_ROOM_NAME_LEN, THREAD_PREFIX,
};
pub use search::{MAX_QUERY_BYTES, MAX_SEARCH_PAGE};
pub use service::{Accepted, ChatService, ChatSettings, Posted, Stores, MAX_HISTORY_PAGE};
