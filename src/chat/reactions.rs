//! Reactions: `message:react` adds or takes back one user's emoji on a message (one per
//! user, emoji and message, kept in the database, [`super::Reactions`]); the room hears
//! `message:reactions` with the message's counts after the change, and history pages
//! carry each message's counts.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    now_ms, ChatError, ChatEvent, ChatService, HistoryPage, MessageRef, ReactionCounts, RoomName,
    Sender,
};

/// Longest reaction accepted, in bytes (emoji sequences with modifiers and joiners, or a
/// short code such as `:+1:`).
pub const MAX_EMOJI_BYTES: usize = 64;

/// A reaction as a client sent it: 1-64 bytes, no whitespace or control characters.
pub fn emoji(raw: &str) -> Result<String, ChatError> {
    if raw.is_empty() || raw.len() > MAX_EMOJI_BYTES {
        return Err(ChatError::invalid(format!(
            "emoji must be 1-{MAX_EMOJI_BYTES} bytes"
        )));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ChatError::invalid(
            "emoji must not contain spaces or control characters",
        ));
    }
    Ok(raw.to_owned())
}

impl ChatService {
    /// Adds (`add`) or takes back the sender's `emoji` on message `id` of `room`, which
    /// must be kept and not deleted; the message's counts after. When that changed
    /// anything, the room hears `message:reactions`.
    pub async fn react(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        id: Uuid,
        emoji: &str,
        add: bool,
    ) -> Result<ReactionCounts, ChatError> {
        let emoji = self::emoji(emoji)?;
        self.may_use(sender, room).await?;
        if !self.membership().is_member(&sender.conn, room) {
            return Err(ChatError::Channel(format!("not a member of room {room}")));
        }
        let Some(offset) = self.log.offset_of(room, MessageRef::Id(id)).await? else {
            return Err(ChatError::invalid("no message with that id in this room"));
        };
        let message = self.log.after(room, offset.saturating_sub(1), 1).await?;
        if message
            .first()
            .is_none_or(|m| m.data.get("deleted").and_then(|d| d.as_bool()) == Some(true))
        {
            return Err(ChatError::invalid("a deleted message takes no reactions"));
        }
        let (changed, counts) = self
            .reactions
            .react(room, id, &sender.user, &emoji, add, now_ms())
            .await?;
        if changed {
            drop(self.emit(
                ChatEvent::Reactions {
                    room: room.clone(),
                    id,
                    reactions: counts.clone(),
                    user: sender.user_ref(),
                    emoji,
                    add,
                },
                None,
            ));
        }
        Ok(counts)
    }

    /// Sets the reaction counts of the messages of `page` that have any.
    pub(super) async fn with_reactions(
        &self,
        mut page: HistoryPage,
    ) -> Result<HistoryPage, ChatError> {
        let ids: Vec<Uuid> = page.messages.iter().map(|m| m.id).collect();
        if ids.is_empty() {
            return Ok(page);
        }
        let mut counts = self.reactions.counts(&ids).await?;
        for message in &mut page.messages {
            message.reactions = counts.remove(&message.id);
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emojis_are_short_and_have_no_spaces() {
        for good in ["👍", "👨‍👩‍👧‍👦", ":+1:", "🇫🇷"] {
            assert_eq!(emoji(good).unwrap(), good);
        }
        let long = "x".repeat(MAX_EMOJI_BYTES + 1);
        for bad in ["", "a b", "tab\t", "nl\n", long.as_str()] {
            assert!(emoji(bad).is_err(), "{bad:?}");
        }
    }
}
