//! Threads: a reply to message `root` of room R (`message:send {room: R, thread: root}`)
//! is stored in the thread's own room, `thread:{root}`, with offsets of its own, and
//! reaches the members who opened the thread (`thread:open`; a sender opens it by
//! replying). R hears `thread:updated` with the reply count after each reply, and R's
//! history shows each root's `reply_count` and `last_reply_at`.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::service::check_page_limit;
use super::{
    ChatError, ChatEvent, ChatService, ConnId, HistoryPage, Message, MessageRef, Posted, RoomName,
    Sender, ThreadRef, ThreadSummary,
};

impl ChatService {
    /// Checks that `root` is a message of `room` (not itself a reply) that the sender may
    /// read, being a member of `room`.
    async fn check_root(
        &self,
        sender: &Sender,
        room: &RoomName,
        root: Uuid,
    ) -> Result<(), ChatError> {
        sender.may_join(room)?;
        if !self.membership().is_member(&sender.conn, room) {
            return Err(ChatError::Channel(format!("not a member of room {room}")));
        }
        match self.log.offset_of(room, MessageRef::Id(root)).await? {
            Some(_) => Ok(()),
            None => Err(ChatError::invalid("no message with that id in this room")),
        }
    }

    fn parents(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, RoomName>> {
        self.thread_parents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `conn` (of `user`) left `parent`: it leaves the threads of `parent` it had open.
    pub(super) fn leave_threads_of(self: &Arc<Self>, conn: &ConnId, user: &str, parent: &RoomName) {
        let open: Vec<RoomName> = self
            .membership()
            .rooms_of(conn)
            .into_iter()
            .filter(RoomName::is_thread)
            .collect();
        if open.is_empty() {
            return;
        }
        let threads: Vec<RoomName> = {
            let parents = self.parents();
            open.into_iter()
                .filter(|t| parents.get(t) == Some(parent))
                .collect()
        };
        for thread in threads {
            self.leave_conn(conn, user, &thread);
        }
    }

    /// Whether the sender may act on messages of `room` (edit, delete, react, read): a
    /// room it may join (a private channel's member), or a thread it opened
    /// (`thread:open` checked the root's room).
    pub(super) async fn may_use(&self, sender: &Sender, room: &RoomName) -> Result<(), ChatError> {
        if !room.is_thread() {
            return self.admits(sender, room).await;
        }
        if self.membership().is_member(&sender.conn, room) {
            Ok(())
        } else {
            Err(ChatError::Forbidden(
                "open the thread (thread:open) to act on its replies".into(),
            ))
        }
    }

    /// The last local member of `thread` left.
    pub(super) fn forget_thread(&self, thread: &RoomName) {
        self.parents().remove(thread);
    }

    /// Makes the sender a member of `root`'s thread in `parent` (once checked), live from
    /// now on.
    async fn enter_thread(
        self: &Arc<Self>,
        sender: &Sender,
        parent: &RoomName,
        root: Uuid,
    ) -> Result<RoomName, ChatError> {
        let thread = RoomName::of_thread(root);
        if self.membership().is_member(&sender.conn, &thread) {
            return Ok(thread);
        }
        let receipt = self.enter_checked(sender, &thread)?;
        // Removed from the root's room meanwhile (a private channel's change, the
        // backend): not in its threads either.
        if !self.membership().is_member(&sender.conn, parent) {
            self.leave_conn(&sender.conn, &sender.user, &thread);
            return Err(ChatError::Channel(format!("not a member of room {parent}")));
        }
        // After the join: the thread has a member now, so it is not being forgotten.
        self.parents().insert(thread.clone(), parent.clone());
        self.go_live(&sender.conn, &thread);
        // Replies from other pods reach this pod from when the subscription is in place.
        let _ = receipt.outcome().await;
        Ok(thread)
    }

    /// Opens the thread of message `root` in `room`: the sender gets its replies from now
    /// on (in its room `thread:{root}`); its summary so far, if it has replies.
    pub async fn open_thread(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        root: Uuid,
    ) -> Result<(RoomName, Option<ThreadSummary>), ChatError> {
        self.check_root(sender, room, root).await?;
        let thread = self.enter_thread(sender, room, root).await?;
        let summary = self.log.thread_summaries(&[root]).await?.remove(&root);
        Ok((thread, summary))
    }

    /// Closes the thread of `root`: no more of its replies (not an error if not open).
    pub fn close_thread(self: &Arc<Self>, sender: &Sender, root: Uuid) -> RoomName {
        let thread = RoomName::of_thread(root);
        self.leave_conn(&sender.conn, &sender.user, &thread);
        thread
    }

    /// Replies to message `root` of `room`: judged by the backend's message hook like
    /// any message, then queued to the log in the thread's room (the sender opens the
    /// thread). [`Posted::stored`] tells the outcome.
    pub async fn reply(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        root: Uuid,
        content: String,
    ) -> Result<Posted, ChatError> {
        self.check_content(&content)?;
        self.check_root(sender, room, root).await?;
        let content = self.judge(sender, Some(room.clone()), content).await?;
        let thread = self.enter_thread(sender, room, root).await?;
        let mut message = Message::chat(Some(thread), sender.user.clone(), content);
        message.user = sender.message_user();
        message.thread = Some(ThreadRef {
            id: root,
            room: room.clone(),
        });
        self.queue_from(sender, message)
    }

    /// A page of the replies to `root` of `room`, oldest first, for a member of `room`.
    pub async fn thread_history(
        &self,
        sender: &Sender,
        room: &RoomName,
        root: Uuid,
        before: Option<MessageRef>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        check_page_limit(limit)?;
        self.check_root(sender, room, root).await?;
        let page = self
            .log
            .page(&RoomName::of_thread(root), before, limit)
            .await?;
        self.with_reactions(page).await
    }

    /// After a reply is stored: its root's room hears the thread's new count (the
    /// reply's offset in the thread) and time.
    pub(super) fn thread_replied(&self, reply: &Message) {
        let (Some(thread), Some(offset)) = (&reply.thread, reply.offset) else {
            return;
        };
        drop(self.emit(
            ChatEvent::ThreadUpdated {
                room: thread.room.clone(),
                id: thread.id,
                reply_count: offset,
                last_reply_at: reply.timestamp.clone(),
            },
            None,
        ));
    }

    /// Sets `reply_count` and `last_reply_at` on the messages of `page` that have replies.
    pub(super) async fn with_threads(
        &self,
        mut page: HistoryPage,
    ) -> Result<HistoryPage, ChatError> {
        let roots: Vec<Uuid> = page.messages.iter().map(|m| m.id).collect();
        if roots.is_empty() {
            return Ok(page);
        }
        let mut summaries = self.log.thread_summaries(&roots).await?;
        for message in &mut page.messages {
            if let Some(summary) = summaries.remove(&message.id) {
                message.reply_count = Some(summary.reply_count);
                message.last_reply_at = Some(summary.last_reply_at);
            }
        }
        Ok(page)
    }
}
