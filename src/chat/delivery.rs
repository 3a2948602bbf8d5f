//! What the chat hands to transports for delivery, the encodings every layer shares, and
//! the seam transports implement.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::{ChatEvent, ConnId, Recipients, RoomName, Transport, UserConnection};

/// The wire shapes an event is encoded into, each at most once per pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A chat message's `realtime.Message` JSON: the raw WebSocket frame, the socket.io
    /// `message:new` payload and the stored record.
    Message,
    /// The raw WebSocket frame of any other event.
    RawFrame,
    /// The bus envelope other pods receive.
    BusEnvelope,
    /// The frame a raw connection speaking the Streamly dialect receives.
    Streamly,
}

const FORMS: usize = 4;

/// An event's encodings: whichever layer first needs a form makes it; every recipient,
/// transport and layer after shares the same bytes. Opaque to the chat.
#[derive(Debug, Default)]
pub struct Encodings {
    forms: [OnceLock<Bytes>; FORMS],
}

impl Encodings {
    /// Encodings with the [`Form::Message`] JSON already made (by the size check).
    pub fn with_message(json: String) -> Self {
        let encodings = Self::default();
        encodings.forms[Form::Message as usize].get_or_init(|| Bytes::from(json));
        encodings
    }

    /// The `form` bytes, made by `encode` if no one made them yet.
    pub fn get(&self, form: Form, encode: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.forms[form as usize]
            .get_or_init(|| Bytes::from(encode()))
            .clone()
    }
}

/// One event to deliver to local members of its room (or to everyone for a global
/// message). `origin` is the local connection that caused it, which is skipped.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event, shared by every transport and recipient.
    pub event: Arc<ChatEvent>,
    /// The causing connection when it is on this pod.
    pub origin: Option<ConnId>,
    /// The event's encodings, shared by every layer.
    pub encoded: Arc<Encodings>,
}

impl Delivery {
    /// A delivery of `event` caused by `origin`, not encoded yet.
    pub fn new(event: ChatEvent, origin: Option<ConnId>) -> Self {
        Self {
            event: Arc::new(event),
            origin,
            encoded: Arc::default(),
        }
    }

    /// The JSON of the chat message this delivery carries (made once), if it carries one.
    pub fn message_json(&self) -> Option<Bytes> {
        let message = self.event.as_message()?;
        Some(
            self.encoded
                .get(Form::Message, || message.to_json().into_bytes()),
        )
    }
}

/// A transport's local fan-out: encodes a [`Delivery`] once for its wire and hands it to
/// each of its local recipients' bounded queues. Never waits, so the caller's order is
/// the order every recipient sees.
pub trait LocalFanout: Send + Sync + 'static {
    /// Delivers to this transport's `recipients` (read from the chat's one membership
    /// index), skipping the delivery's origin.
    fn deliver(&self, delivery: &Delivery, recipients: &Recipients<'_>);

    /// `conn` (of `transport`) became a live member of `room`: a transport that keeps
    /// rooms of its own (socket.io's, for its broadcasts and adapter) mirrors it.
    fn joined(&self, _conn: &ConnId, _transport: Transport, _room: &RoomName) {}

    /// `conn` (of `transport`) left `room`.
    fn left(&self, _conn: &ConnId, _transport: Transport, _room: &RoomName) {}

    /// Tells `conn` (of `transport`) alone `notice`, then ends the connection (the
    /// application's backend disconnected its user).
    fn end(&self, _conn: &ConnId, _transport: Transport, _notice: &Delivery) {}

    /// A connection opened (in no room yet).
    fn connected(&self, _connection: &UserConnection) {}

    /// `conn` (of `transport`) is gone.
    fn disconnected(&self, _conn: &ConnId, _transport: Transport) {}
}
