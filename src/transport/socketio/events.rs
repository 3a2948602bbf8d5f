//! The socket.io event handlers: one dispatcher for every client event (taking the
//! socket's turn in arrival order), the ordered handlers (`room:join`, `room:leave`,
//! `message:send`, `user:typing`), the unordered ones through one skeleton, and the
//! disconnect handler.

use std::sync::Arc;

use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use tracing::info;

use super::requests::{
    decode, DeleteRequest, EditRequest, HistoryRequest, JoinRequest, ReactRequest, ReadRequest,
    RoomRequest, SearchRequest, SendRequest, StatusRequest, ThreadRequest, TypingRequest,
    UnreadRequest,
};
use super::{reply, sender_of, ExpiryTimer, Line, Reply, Turn};
use crate::chat::{excerpt, ChatError, Posted, Transport};
use crate::gate::{Action, ConnectionPermit};
use crate::telemetry::metrics;
use crate::transport::bodies::{
    joined_body, opened_body, page_body, recovery_body, unread_body, unread_rooms_body, users_body,
    DEFAULT_HISTORY_PAGE, DEFAULT_SEARCH_PAGE,
};
use crate::transport::state::AppState;

async fn on_join<A: Adapter>(
    socket: SocketRef<A>,
    state: AppState,
    turn: Turn,
    req: Result<JoinRequest, ChatError>,
    reply: Reply<A>,
) {
    metrics::message_in(Transport::SocketIo, "room:join");
    if let Err(e) = turn.wait().await {
        return reply.send(Err(e));
    }
    let req = match req {
        Ok(req) => req,
        Err(e) => return reply.send(Err(e)),
    };
    let sender = sender_of(&socket);
    if let Some(since) = req.since {
        // Missed messages ride in the ack, queued before any live message. The turn is
        // held until the hand-over: the socket's next event (a `room:leave`, say) runs
        // after this join, as sent.
        let room = req.room.clone();
        let mut reply = Some(reply);
        let recovered = state
            .chat
            .recover(&sender, &req.room, since, |missed, recovered| {
                if let Some(reply) = reply.take() {
                    reply.send(Ok(recovery_body(&room, &missed, recovered)));
                }
            })
            .await;
        drop(turn);
        if let (Err(e), Some(reply)) = (recovered, reply) {
            // Recovery failed before the hand-over: the ack says why.
            reply.send(Err(e));
        }
        return;
    }
    let joined = state.chat.join_admitted(&sender, &req.room).await;
    drop(turn);
    let result = match joined {
        Ok(receipt) => {
            // Acknowledge once messages from other pods for this room reach this pod.
            let degraded = receipt.outcome().await.is_err();
            Ok(joined_body(&state.chat, &sender, &req.room, degraded).await)
        }
        Err(e) => Err(e),
    };
    reply.send(result);
}

/// The skeleton every unordered handler shares: count the event, run `handle` on the
/// decoded request (or answer the decoding error), send the ack.
async fn answer<A: Adapter, R, Fut>(
    event: &'static str,
    req: Result<R, ChatError>,
    reply: Reply<A>,
    handle: impl FnOnce(R) -> Fut,
) where
    Fut: std::future::Future<Output = Result<serde_json::Value, ChatError>>,
{
    metrics::message_in(Transport::SocketIo, event);
    let result = match req {
        Ok(req) => handle(req).await,
        Err(e) => Err(e),
    };
    reply.send(result);
}

/// The skeleton of the ordered handlers: count the event, wait for the socket's turn,
/// run `step` on the decoded request while holding it (so the chat sees the socket's
/// events in the order sent), give the turn up, then send the ack `answer` makes.
async fn in_turn<A: Adapter, R, T, Fut>(
    event: &'static str,
    turn: Turn,
    req: Result<R, ChatError>,
    reply: Reply<A>,
    step: impl FnOnce(R) -> Result<T, ChatError>,
    answer: impl FnOnce(T) -> Fut,
) where
    Fut: std::future::Future<Output = Result<serde_json::Value, ChatError>>,
{
    let step = |req| std::future::ready(step(req));
    in_turn_async(event, turn, req, reply, step, answer).await;
}

/// [`in_turn`] with a step that waits (the message hook): the turn is held across it.
async fn in_turn_async<A: Adapter, R, T, StepFut, Fut>(
    event: &'static str,
    turn: Turn,
    req: Result<R, ChatError>,
    reply: Reply<A>,
    step: impl FnOnce(R) -> StepFut,
    answer: impl FnOnce(T) -> Fut,
) where
    StepFut: std::future::Future<Output = Result<T, ChatError>>,
    Fut: std::future::Future<Output = Result<serde_json::Value, ChatError>>,
{
    metrics::message_in(Transport::SocketIo, event);
    if let Err(e) = turn.wait().await {
        return reply.send(Err(e));
    }
    let stepped = match req {
        Ok(req) => step(req).await,
        Err(e) => Err(e),
    };
    drop(turn);
    let result = match stepped {
        Ok(done) => answer(done).await,
        Err(e) => Err(e),
    };
    reply.send(result);
}

/// The ack of a sent message: once it is stored, with its id and offset, once other
/// pods have it or saying it reached only this pod so far (`degraded`; the others read
/// it from the log later); or why it was not stored (nobody got it).
async fn posted_ack(posted: Posted) -> Result<serde_json::Value, ChatError> {
    let accepted = posted.stored().await?;
    Ok(crate::transport::bodies::accepted_body(accepted).await)
}

/// Events that read (or, for read positions and reactions, write) the database or Redis:
/// each takes one read from the sender's allowance (RATE_READS_PER_MIN per user,
/// RATE_READS_PER_IP_PER_MIN per address).
const READ_EVENTS: [&str; 10] = [
    "room:join",
    "message:history",
    "message:edit",
    "message:delete",
    "presence:list",
    "message:read",
    "message:react",
    "room:unread",
    "thread:open",
    "message:search",
];

/// Whether a `message:send` payload names a thread (a reply).
fn is_reply(args: &Result<serde_json::Value, socketioxide::ParserError>) -> bool {
    args.as_ref()
        .is_ok_and(|a| a.get("thread").is_some_and(|t| !t.is_null()))
}

/// Routes a client event to its handler. The turn is taken for every event in arrival
/// order; reads that need no ordering give it up at once.
pub(super) async fn on_event<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    Event(event): Event,
    turn: Turn,
    TryData(args): TryData<serde_json::Value>,
    reply: Reply<A>,
) {
    if READ_EVENTS.contains(&event.as_str()) {
        if let Err(e) = state.gate.limit(Action::Read, &sender_of(&socket)) {
            drop(turn);
            metrics::message_in(Transport::SocketIo, "rate_limited");
            return reply.send(Err(e));
        }
    }
    match event.as_str() {
        "room:join" => on_join(socket, state, turn, decode(args), reply).await,
        "room:leave" => {
            let sender = sender_of(&socket);
            let leave = |req: RoomRequest| {
                state.chat.leave(&sender, &req.room);
                Ok(json!({ "status": "ok", "room": req.room }))
            };
            in_turn(
                "room:leave",
                turn,
                decode(args),
                reply,
                leave,
                |body| async { Ok(body) },
            )
            .await;
        }
        "message:send" if is_reply(&args) => {
            // A reply checks its root in the log first; the socket's turn is held
            // meanwhile, so its messages keep their order.
            let sender = sender_of(&socket);
            let (chat, gate, sender) = (&state.chat, &state.gate, &sender);
            let reply_to = |req: SendRequest| async move {
                gate.limit(Action::Send, sender)?;
                let (Some(room), Some(root)) = (req.room, req.thread) else {
                    return Err(ChatError::invalid("a reply needs a room and a thread"));
                };
                chat.reply(sender, &room, root, req.content).await
            };
            Box::pin(in_turn_async(
                "message:send",
                turn,
                decode(args),
                reply,
                reply_to,
                posted_ack,
            ))
            .await;
        }
        "thread:open" => {
            let sender = sender_of(&socket);
            let chat = &state.chat;
            let open = |req: ThreadRequest| async move {
                let (thread, summary) = chat.open_thread(&sender, &req.room, req.id).await?;
                Ok(opened_body(&req.room, req.id, &thread, summary))
            };
            Box::pin(in_turn_async(
                "thread:open",
                turn,
                decode(args),
                reply,
                open,
                |body| async { Ok(body) },
            ))
            .await;
        }
        "thread:close" => {
            let sender = sender_of(&socket);
            let close = |req: ThreadRequest| {
                let thread = state.chat.close_thread(&sender, req.id);
                Ok(json!({ "status": "ok", "room": req.room, "id": req.id, "thread": thread }))
            };
            in_turn(
                "thread:close",
                turn,
                decode(args),
                reply,
                close,
                |body| async { Ok(body) },
            )
            .await;
        }
        "message:send" if state.chat.judges_messages() => {
            // The backend's message hook judges it first; the socket's turn is held
            // meanwhile, so its messages keep their order.
            let sender = sender_of(&socket);
            let (chat, gate, sender) = (&state.chat, &state.gate, &sender);
            let submit = |req: SendRequest| async move {
                gate.limit(Action::Send, sender)?;
                chat.submit(sender, req.room, req.content).await
            };
            Box::pin(in_turn_async(
                "message:send",
                turn,
                decode(args),
                reply,
                submit,
                posted_ack,
            ))
            .await;
        }
        "message:send" => {
            let sender = sender_of(&socket);
            let post = |req: SendRequest| {
                state.gate.limit(Action::Send, &sender)?;
                state.chat.post(&sender, req.room, req.content)
            };
            in_turn("message:send", turn, decode(args), reply, post, posted_ack).await;
        }
        "user:typing" => {
            let sender = sender_of(&socket);
            let typing = |req: TypingRequest| {
                state.gate.limit(Action::Typing, &sender)?;
                state.chat.typing(&sender, &req.room, req.typing)?;
                Ok(json!({ "status": "ok" }))
            };
            in_turn(
                "user:typing",
                turn,
                decode(args),
                reply,
                typing,
                |body| async { Ok(body) },
            )
            .await;
        }
        unordered => {
            drop(turn);
            let sender = sender_of(&socket);
            let (chat, gate, sender) = (&state.chat, &state.gate, &sender);
            match unordered {
                "message:history" => {
                    let page = |req: HistoryRequest| async move {
                        let limit = req.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
                        let page = match req.thread {
                            Some(root) => {
                                chat.thread_history(sender, &req.room, root, req.before, limit)
                                    .await?
                            }
                            None => chat.history(sender, &req.room, req.before, limit).await?,
                        };
                        Ok(page_body(&page))
                    };
                    answer("message:history", decode(args), reply, page).await;
                }
                "message:edit" => {
                    let edit = |req: EditRequest| async move {
                        let edited = chat.edit(sender, &req.room, req.id, req.content).await?;
                        Ok(json!({ "status": "ok", "id": edited.id }))
                    };
                    answer("message:edit", decode(args), reply, edit).await;
                }
                "message:delete" => {
                    let delete = |req: DeleteRequest| async move {
                        chat.delete(sender, &req.room, req.id).await?;
                        Ok(json!({ "status": "ok", "id": req.id }))
                    };
                    answer("message:delete", decode(args), reply, delete).await;
                }
                "presence:update" => {
                    let status = |req: StatusRequest| async move {
                        gate.limit(Action::Presence, sender)?;
                        chat.set_status(sender, req.status).await?;
                        Ok(json!({ "status": "ok" }))
                    };
                    answer("presence:update", decode(args), reply, status).await;
                }
                "message:read" => {
                    let read = |req: ReadRequest| async move {
                        let at = chat.mark_read(sender, &req.room, req.offset).await?;
                        Ok(json!({ "status": "ok", "room": req.room, "read_offset": at }))
                    };
                    answer("message:read", decode(args), reply, read).await;
                }
                "message:search" => {
                    let search = |req: SearchRequest| async move {
                        let limit = req.limit.unwrap_or(DEFAULT_SEARCH_PAGE);
                        let page = chat
                            .search(sender, req.room.as_ref(), &req.q, req.before, limit)
                            .await?;
                        Ok(page_body(&page))
                    };
                    answer("message:search", decode(args), reply, search).await;
                }
                "message:react" => {
                    let react = |req: ReactRequest| async move {
                        let counts = chat
                            .react(sender, &req.room, req.id, &req.emoji, req.add)
                            .await?;
                        Ok(json!({ "status": "ok", "id": req.id, "reactions": counts }))
                    };
                    answer("message:react", decode(args), reply, react).await;
                }
                "room:unread" => {
                    let unread = |req: UnreadRequest| async move {
                        match req.room {
                            Some(room) => {
                                Ok(unread_body(&room, &chat.unread(sender, &room).await?))
                            }
                            None => Ok(unread_rooms_body(&chat.unread_rooms(sender).await?)),
                        }
                    };
                    let args = args.map(|a| if a.is_null() { json!({}) } else { a });
                    answer("room:unread", decode(args), reply, unread).await;
                }
                "presence:list" => {
                    let list = |req: RoomRequest| async move {
                        let users = chat.presence_list(sender, &req.room).await?;
                        Ok(users_body(&users))
                    };
                    answer("presence:list", decode(args), reply, list).await;
                }
                rpc if rpc.starts_with("rpc:") && state.hooks.serves_rpc() => {
                    let method = &rpc["rpc:".len()..];
                    let hooks = &state.hooks;
                    let call = |params: serde_json::Value| async move {
                        gate.limit(Action::Read, sender)?;
                        let result = hooks.rpc(sender, "socketio", method, params).await?;
                        Ok(json!({ "status": "ok", "result": result }))
                    };
                    let params = Ok(args.unwrap_or(serde_json::Value::Null));
                    Box::pin(answer("rpc", params, reply, call)).await;
                }
                _ => on_unknown(socket, &event, reply),
            }
        }
    }
}

fn on_unknown<A: Adapter>(socket: SocketRef<A>, event: &str, reply: Reply<A>) {
    metrics::message_in(Transport::SocketIo, "unknown");
    let err = ChatError::invalid(format!("unknown event {:?}", excerpt(event, 64)));
    if reply.wants_ack() {
        reply::emit_error(&socket, &err);
    }
    reply.send(Err(err));
}

pub(super) async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    reason: DisconnectReason,
) {
    // After every earlier event (and the connect handler), so nothing re-registers
    // the connection once it is gone.
    if let Some(line) = socket.extensions.get::<Arc<Line>>() {
        // An unbounded place: never refused.
        let _ = Turn::next(&line).wait().await;
    }
    let conn = sender_of(&socket).conn;
    state.chat.disconnect(&conn);
    if let Some(ExpiryTimer(stop)) = socket.extensions.remove::<ExpiryTimer>() {
        stop.cancel();
    }
    drop(socket.extensions.remove::<Arc<ConnectionPermit>>());
    info!(conn = %conn, ?reason, "socket.io disconnected");
}
