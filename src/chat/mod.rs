//! The chat domain: rooms, membership, the message model and its validation, presence,
//! typing, the order of each room's messages, history and recovery by offset, and the
//! [`ChatService`] both transports call.
//! It owns its seams: transports implement [`LocalFanout`]; `bus/` and `store/`
//! implement the [`ports`]. No axum, socketioxide, redis or wire framing in here, and
//! no import of `transport`, `bus`, `store` or `redis` (tests/layering.rs checks).

mod announce;
mod backend;
mod delivery;
mod error;
mod event;
mod history;
mod membership;
mod message;
mod policy;
pub mod ports;
mod posting;
mod presence;
mod recovery;
mod room;
mod sequence;
mod service;
mod typing;

pub use backend::{Publication, Published, IDEMPOTENCY_WINDOW, MAX_IDEMPOTENCY_KEY, MAX_REASON};
pub use delivery::{Delivery, Encodings, Form, LocalFanout};
pub use error::{excerpt, ChatError, ErrorCode};
pub use event::{ChatEvent, Status, UserRef};
pub use history::{message_ms, now_ms, Retention};
pub use membership::{
    ConnId, Departed, Interest, Mailbox, Member, Membership, MembershipCounts, NewConnection,
    Recipients, Selection, Transport, UserConnection,
};
pub use message::{ms_of_rfc3339, now_rfc3339, rfc3339_of_ms, Message, MessageType, SERVER_SENDER};
pub use policy::{RoomPattern, Sender, USER_ROOM_PREFIX};
pub use ports::{
    Appended, Asked, Bus, BusError, BusStatus, Claim, Committed, Draft, Happened, HistoryPage,
    Inbound, MessageFilter, MessageLog, MessageRef, Observer, PodConnections, PresenceChanges,
    PresenceState, PresenceStore, Receipt, RequestKeys, RoomBounds, RoomsCommand, StoreError,
    Stored, Unstored, Verdict, LOCAL_POD,
};
pub use recovery::{GAP_WAIT, MAX_RECOVERED};
pub use room::{RoomName, MAX_ROOM_NAME_LEN};
pub use service::{Accepted, ChatService, ChatSettings, Posted, Stores, MAX_HISTORY_PAGE};
