//! The chat domain: rooms, membership, the message model and its validation, presence,
//! typing, history and recovery rules, and the [`ChatService`] both transports call.
//! It owns its seams: transports implement [`LocalFanout`]; `bus/` and `store/`
//! implement the [`ports`]. No axum, socketioxide, redis or wire framing in here, and
//! no import of `transport`, `bus`, `store` or `redis` (tests/layering.rs checks).

mod announce;
mod delivery;
mod error;
mod event;
mod history;
mod membership;
mod message;
mod policy;
pub mod ports;
mod presence;
mod recent;
mod room;
mod service;
mod typing;

pub use delivery::{Delivery, Encodings, Form, LocalFanout};
pub use error::{excerpt, ChatError, ErrorCode};
pub use event::{ChatEvent, Status, UserRef};
pub use history::{message_ms, now_ms, Retention};
pub use membership::{
    ConnId, Departed, Interest, Mailbox, Member, Membership, MembershipCounts, Recipients,
    Transport,
};
pub use message::{now_rfc3339, Message, MessageType, SERVER_SENDER};
pub use policy::{RoomPattern, Sender, USER_ROOM_PREFIX};
pub use ports::{
    Bus, BusError, BusStatus, HistoryPage, HistoryStore, Inbound, PresenceChanges, PresenceState,
    PresenceStore, Receipt, StoreError,
};
pub use room::{RoomName, MAX_ROOM_NAME_LEN};
pub use service::{ChatService, ChatSettings, Posted, Stores, MAX_HISTORY_PAGE};
