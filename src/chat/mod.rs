//! The chat domain: rooms, membership, the message model and its validation, presence,
//! typing, history and recovery rules, and the
//! [`ChatService`] both transports call. No axum, socketioxide, redis or wire framing
//! in here; transports implement [`LocalFanout`] and the bus implements [`crate::bus::Bus`].

mod delivery;
mod error;
mod event;
mod membership;
mod message;
mod policy;
mod presence;
mod recent;
mod room;
mod service;
mod typing;

pub use delivery::{Delivery, LocalFanout};
pub use error::{excerpt, ChatError, ErrorCode};
pub use event::{ChatEvent, Status, UserRef};
pub use membership::{ConnId, Departed, Interest, Membership, MembershipCounts, Transport};
pub use message::{now_rfc3339, Message, MessageType, SERVER_SENDER};
pub use policy::{RoomPattern, Sender, USER_ROOM_PREFIX};
pub use room::{RoomName, MAX_ROOM_NAME_LEN};
pub use service::{ChatService, ChatSettings, Posted, Stores, MAX_HISTORY_PAGE};
