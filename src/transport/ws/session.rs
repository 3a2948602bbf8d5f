//! One raw WebSocket connection's life after the upgrade: registration, joins and
//! recovery, the welcome, the reader that decodes frames and calls the chat, and the
//! clean-up when it ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::timeout;
use tracing::{debug, info};

use super::hub::{close_code, Closer, Outbox};
use super::protocol::{self as ws_protocol, ClientFrame, Request};
use super::writer::write_loop;
use super::{Accepted, Session};
use crate::chat::{ChatError, Mailbox, Message, MessageRef, RoomName, Sender, Transport};
use crate::gate::{unix_now, Action};
use crate::telemetry::metrics;
use crate::transport::bodies::{
    joined_body, opened_body, page_body, recovery_body, unread_body, unread_rooms_body, users_body,
};
use crate::transport::state::AppState;

/// Registers the connection, joins its rooms, sends the welcome (and what was missed),
/// and starts the writer.
pub(super) async fn open_session(socket: WebSocket, accepted: Accepted) -> Session {
    let Accepted {
        ctx,
        room,
        since,
        streamly,
        admission,
        permit,
    } = accepted;
    let sender = admission.sender;
    let conn = sender.conn.clone();
    let closer = Closer::default();
    let outbox = Arc::new(Outbox::new(ctx.ws_settings.send_buffer, closer.clone()));
    if streamly {
        outbox.speak_streamly();
    }
    let mailbox: Mailbox = outbox.clone();
    ctx.chat.connect(&sender, Transport::Ws, Some(mailbox));
    ctx.hub.register(conn.clone(), outbox.clone());
    let link = Link {
        ctx: &ctx,
        sender: &sender,
        outbox: &outbox,
    };
    if let Some(own) = sender.own_room() {
        link.join(&own, None).await;
    }
    match (&room, since) {
        (Some(room), Some(since)) => {
            // Welcome first, then what was missed, then the live stream.
            if !streamly {
                link.send(&ws_protocol::welcome(conn.as_str(), &sender, Some(room)));
            }
            let reply = |body: Value| {
                let mut frame = ws_protocol::reply("room:join", None, body);
                frame.room = Some(room.clone());
                frame
            };
            if let Err(e) = link.recover(room, since, reply).await {
                link.error(&e, None);
            }
        }
        _ => {
            if let Some(room) = &room {
                link.join(room, None).await;
            }
            if !streamly {
                link.send(&ws_protocol::welcome(conn.as_str(), &sender, room.as_ref()));
            }
        }
    }
    info!(conn = %conn, user = %sender.user, room = room.as_ref().map(RoomName::as_str), "ws connected");

    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        outbox.clone(),
        closer.clone(),
        ctx.ws_settings,
    ));
    let expiry = admission.expires_at.map(|exp| {
        let (hub, outbox, closer) = (ctx.hub.clone(), outbox.clone(), closer.clone());
        tokio::spawn(async move {
            let wait = Duration::from_secs(exp.saturating_sub(unix_now()));
            tokio::select! {
                () = closer.closed() => {}
                () = tokio::time::sleep(wait) => {
                    let err = ChatError::AuthFailed("token expired".into());
                    hub.offer(&outbox, ws_protocol::error(&err, None).to_json().into());
                    closer.close(close_code::POLICY, "token expired");
                }
            }
        })
    });
    Session {
        ctx,
        sender,
        room,
        outbox,
        closer,
        stream,
        writer,
        expiry,
        permit,
    }
}

impl Session {
    /// Reads the client's frames until the connection ends, then cleans up.
    pub(super) async fn run(self) {
        let link = Link {
            ctx: &self.ctx,
            sender: &self.sender,
            outbox: &self.outbox,
        };
        read_loop(self.stream, &link, self.room.as_ref(), &self.closer).await;
        self.closer.close(close_code::NORMAL, "connection ended");

        let (ctx, conn) = (&self.ctx, &self.sender.conn);
        ctx.hub.unregister(conn);
        ctx.chat.disconnect(conn);
        // The connection is over for the per-address cap as soon as it is for the chat
        // (its writer may still wait out a close handshake below).
        drop(self.permit);
        if let Some(expiry) = self.expiry {
            expiry.abort();
        }
        if let Err(e) = self.writer.await {
            debug!(error = %e, "ws writer task failed");
        }
        info!(conn = %conn, user = %self.sender.user, reason = ?self.closer.reason(), "ws disconnected");
    }
}

/// One connection's view of the chat: its identity and its outbox.
#[derive(Clone, Copy)]
struct Link<'a> {
    ctx: &'a AppState,
    sender: &'a Sender,
    outbox: &'a Arc<Outbox>,
}

impl Link<'_> {
    fn send(&self, frame: &Message) {
        self.ctx.hub.offer(self.outbox, frame.to_json().into());
    }

    fn error(&self, err: &ChatError, request_id: Option<&str>) {
        metrics::error(err.code());
        self.send(&ws_protocol::error(err, request_id));
    }

    /// Joins `room` (live delivery from when messages of other pods arrive here too).
    async fn join(&self, room: &RoomName, request_id: Option<&str>) -> bool {
        match self.ctx.chat.join_admitted(self.sender, room).await {
            Ok(receipt) => {
                if let Err(e) = receipt.outcome().await {
                    debug!(error = %e, "room subscription not confirmed");
                }
                true
            }
            Err(e) => {
                self.error(&e, request_id);
                false
            }
        }
    }

    /// Joins `room` and queues what was missed since `since` before any live message.
    async fn recover(
        &self,
        room: &RoomName,
        since: MessageRef,
        frame: impl FnOnce(Value) -> Message,
    ) -> Result<(), ChatError> {
        let (hub, outbox) = (&self.ctx.hub, self.outbox);
        self.ctx
            .chat
            .recover(self.sender, room, since, |missed, recovered| {
                let body = recovery_body(room, &missed, recovered);
                hub.offer(outbox, frame(body).to_json().into());
            })
            .await
    }

    async fn request(&self, request_id: Option<&str>, request: Request) {
        let name = request.name();
        if request.reads_store() {
            if let Err(e) = self.ctx.gate.limit(Action::Read, self.sender) {
                return self.error(&e, request_id);
            }
        }
        let result = match request {
            Request::Join { room, since: None } => {
                if self.join(&room, request_id).await {
                    Ok(joined_body(&self.ctx.chat, self.sender, &room, false).await)
                } else {
                    return;
                }
            }
            Request::Join {
                room,
                since: Some(since),
            } => {
                let reply = |body| ws_protocol::reply(name, request_id, body);
                match self.recover(&room, since, reply).await {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            Request::Leave { room } => {
                self.ctx.chat.leave(self.sender, &room);
                Ok(json!({ "status": "ok", "room": room }))
            }
            Request::History {
                room,
                before,
                limit,
                thread: None,
            } => self
                .ctx
                .chat
                .history(self.sender, &room, before, limit)
                .await
                .map(|page| page_body(&page)),
            Request::History {
                room,
                before,
                limit,
                thread: Some(root),
            } => self
                .ctx
                .chat
                .thread_history(self.sender, &room, root, before, limit)
                .await
                .map(|page| page_body(&page)),
            Request::Search {
                room,
                q,
                before,
                limit,
            } => self
                .ctx
                .chat
                .search(self.sender, room.as_ref(), &q, before, limit)
                .await
                .map(|page| page_body(&page)),
            Request::ThreadOpen { room, id } => self
                .ctx
                .chat
                .open_thread(self.sender, &room, id)
                .await
                .map(|(thread, summary)| opened_body(&room, id, &thread, summary)),
            Request::ThreadClose { room, id } => {
                let thread = self.ctx.chat.close_thread(self.sender, id);
                Ok(json!({ "status": "ok", "room": room, "id": id, "thread": thread }))
            }
            Request::Edit { room, id, content } => self
                .ctx
                .chat
                .edit(self.sender, &room, id, content)
                .await
                .map(|m| json!({ "status": "ok", "id": m.id })),
            Request::Delete { room, id } => self
                .ctx
                .chat
                .delete(self.sender, &room, id)
                .await
                .map(|()| json!({ "status": "ok", "id": id })),
            Request::Read { room, offset } => self
                .ctx
                .chat
                .mark_read(self.sender, &room, offset)
                .await
                .map(|at| json!({ "status": "ok", "room": room, "read_offset": at })),
            Request::React {
                room,
                id,
                emoji,
                add,
            } => self
                .ctx
                .chat
                .react(self.sender, &room, id, &emoji, add)
                .await
                .map(|counts| json!({ "status": "ok", "id": id, "reactions": counts })),
            Request::Unread { room: Some(room) } => self
                .ctx
                .chat
                .unread(self.sender, &room)
                .await
                .map(|unread| unread_body(&room, &unread)),
            Request::Unread { room: None } => self
                .ctx
                .chat
                .unread_rooms(self.sender)
                .await
                .map(|rooms| unread_rooms_body(&rooms)),
            Request::PresenceList { room } => self
                .ctx
                .chat
                .presence_list(self.sender, &room)
                .await
                .map(|users| users_body(&users)),
            Request::Rpc { method, params } => self
                .ctx
                .hooks
                .rpc(self.sender, "ws", &method, params)
                .await
                .map(|result| json!({ "status": "ok", "result": result })),
        };
        match result {
            Ok(body) => self.send(&ws_protocol::reply(name, request_id, body)),
            Err(e) => self.error(&e, request_id),
        }
    }
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    link: &Link<'_>,
    room: Option<&RoomName>,
    closer: &Closer,
) {
    let ctx = link.ctx;
    let sender = link.sender;
    let reply = |err: ChatError| link.error(&err, None);
    loop {
        let next = tokio::select! {
            biased;
            () = closer.closed() => return,
            next = timeout(ctx.ws_settings.pong_timeout, stream.next()) => next,
        };
        let frame = match next {
            Err(_elapsed) => return closer.close(close_code::POLICY, "pong timeout"),
            Ok(None) => return,
            Ok(Some(Err(e))) => {
                if let Some((code, reason)) = read_error_close(e) {
                    closer.close(code, reason);
                }
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            WsMessage::Text(text) => text,
            WsMessage::Binary(_) => {
                reply(ChatError::invalid(
                    "binary frames are not supported; send JSON text frames",
                ));
                continue;
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            WsMessage::Close(_) => return,
        };
        let decoded = ws_protocol::decode(text.as_str());
        metrics::message_in(Transport::Ws, frame_kind(&decoded));
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                reply(e);
                continue;
            }
        };
        let result = match decoded {
            ClientFrame::Chat {
                room: named,
                content,
                request_id,
                thread: Some(root),
            } => Box::pin(reply_to(link, room, named, root, content, request_id)).await,
            ClientFrame::Chat {
                room: named,
                content,
                request_id,
                ..
            } if ctx.chat.judges_messages() => {
                // The backend's message hook judges it first; the next frame waits.
                Box::pin(submit(link, room, named, content, request_id)).await
            }
            ClientFrame::Chat {
                room: named,
                content,
                request_id,
                ..
            } => post(link, room, named, content, request_id),
            ClientFrame::Streamly {
                room: named,
                content,
                username,
            } => {
                link.outbox.speak_streamly();
                // The username names this message's sender where nobody vouched for a
                // name (unverified); a token's or the backend's name wins.
                let renamed = username.map(|name| {
                    let mut renamed = sender.clone();
                    renamed.choose_name(name);
                    renamed
                });
                let speaker = Link {
                    sender: renamed.as_ref().unwrap_or(sender),
                    ..*link
                };
                if ctx.chat.judges_messages() {
                    Box::pin(submit(&speaker, room, named, content, None)).await
                } else {
                    post(&speaker, room, named, content, None)
                }
            }
            ClientFrame::Typing {
                room: named,
                typing,
            } => match named.or_else(|| room.cloned()) {
                Some(target) => ctx
                    .gate
                    .limit(Action::Typing, sender)
                    .and_then(|()| ctx.chat.typing(sender, &target, typing)),
                None => Err(ChatError::invalid("typing needs a room")),
            },
            // Rare requests run boxed, so an idle connection's task does not reserve
            // room for their state.
            ClientFrame::Status(status) => match ctx.gate.limit(Action::Presence, sender) {
                Ok(()) => Box::pin(ctx.chat.set_status(sender, status)).await,
                Err(e) => Err(e),
            },
            ClientFrame::Request {
                request_id,
                request,
            } => {
                Box::pin(link.request(request_id.as_deref(), request)).await;
                Ok(())
            }
            ClientFrame::Ping => {
                link.send(&ws_protocol::pong());
                Ok(())
            }
            ClientFrame::Pong => Ok(()),
        };
        if let Err(e) = result {
            reply(e);
        }
    }
}

/// Where a chat frame goes, once the sender's allowance took it: the connection's own
/// room unless the frame names another room it is in; none at all: global (the chat
/// refuses rooms the connection is not in). `None`: refused, and told.
fn chat_target(
    link: &Link<'_>,
    conn_room: Option<&RoomName>,
    named: Option<RoomName>,
    request_id: Option<&str>,
) -> Option<Option<RoomName>> {
    if let Err(e) = link.ctx.gate.limit(Action::Send, link.sender) {
        link.error(&e, request_id);
        return None;
    }
    Some(named.or_else(|| conn_room.cloned()))
}

/// A reply in the thread of message `root` of the named room (or the connection's):
/// queued once its root is checked; acked like [`post`].
async fn reply_to(
    link: &Link<'_>,
    conn_room: Option<&RoomName>,
    named: Option<RoomName>,
    root: uuid::Uuid,
    content: String,
    request_id: Option<String>,
) -> Result<(), ChatError> {
    if let Some(target) = chat_target(link, conn_room, named, request_id.as_deref()) {
        let posted = match target {
            Some(room) => link.ctx.chat.reply(link.sender, &room, root, content).await,
            None => Err(ChatError::invalid("a reply needs a room")),
        };
        acknowledge(link, posted, request_id);
    }
    Ok(())
}

/// [`post`] after the backend's message hook allowed (or replaced) the message.
async fn submit(
    link: &Link<'_>,
    conn_room: Option<&RoomName>,
    named: Option<RoomName>,
    content: String,
    request_id: Option<String>,
) -> Result<(), ChatError> {
    if let Some(target) = chat_target(link, conn_room, named, request_id.as_deref()) {
        let posted = link.ctx.chat.submit(link.sender, target, content).await;
        acknowledge(link, posted, request_id);
    }
    Ok(())
}

/// Queues a chat message (in the order the frames came). Once stored, a frame with a
/// `request_id` gets its ack; a message that could not be stored gets an error frame
/// either way (nobody received it).
fn post(
    link: &Link<'_>,
    conn_room: Option<&RoomName>,
    named: Option<RoomName>,
    content: String,
    request_id: Option<String>,
) -> Result<(), ChatError> {
    if let Some(target) = chat_target(link, conn_room, named, request_id.as_deref()) {
        let posted = link.ctx.chat.post(link.sender, target, content);
        acknowledge(link, posted, request_id);
    }
    Ok(())
}

/// Once `posted` is stored, acks a frame that had a `request_id`; an error frame when it
/// was refused or could not be stored.
fn acknowledge(
    link: &Link<'_>,
    posted: Result<crate::chat::Posted, ChatError>,
    request_id: Option<String>,
) {
    let ctx = link.ctx;
    let posted = posted.map_err(|e| (e, request_id.clone()));
    let posted = match posted {
        Ok(posted) => posted,
        Err((e, id)) => {
            link.error(&e, id.as_deref());
            return;
        }
    };
    let (hub, outbox) = (ctx.hub.clone(), link.outbox.clone());
    tokio::spawn(async move {
        let frame = match (posted.stored().await, request_id) {
            (Ok(accepted), Some(id)) => {
                let room = accepted.message.room.clone();
                let body = crate::transport::bodies::accepted_body(accepted).await;
                ws_protocol::stored(body, room, &id)
            }
            (Ok(_), None) => return,
            (Err(e), id) => {
                metrics::error(e.code());
                ws_protocol::error(&e, id.as_deref())
            }
        };
        hub.offer(&outbox, frame.to_json().into());
    });
}

fn frame_kind(decoded: &Result<ClientFrame, ChatError>) -> &'static str {
    match decoded {
        Ok(ClientFrame::Chat { .. }) => "chat",
        Ok(ClientFrame::Streamly { .. }) => "streamly",
        Ok(ClientFrame::Typing { .. }) => "typing",
        Ok(ClientFrame::Status(_)) => "presence",
        Ok(ClientFrame::Request { request, .. }) => request.name(),
        Ok(ClientFrame::Ping) => "ping",
        Ok(ClientFrame::Pong) => "pong",
        Err(_) => "invalid",
    }
}

/// The close code for a read error the client caused (too big, invalid UTF-8, protocol).
pub fn read_error_close(err: axum::Error) -> Option<(u16, &'static str)> {
    match err.into_inner().downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some((close_code::TOO_BIG, "message too big")),
        Some(tungstenite::Error::Utf8(_)) => Some((close_code::INVALID_DATA, "invalid utf-8")),
        Some(tungstenite::Error::Protocol(_)) => Some((close_code::PROTOCOL, "protocol error")),
        _ => None,
    }
}
