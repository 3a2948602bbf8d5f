//! Channels: a room as a record (title, topic, who created it, private with members),
//! kept in the database ([`super::Channels`]). Any user a token names creates one; its
//! creator or the application's backend changes or deletes it. A private channel admits
//! only its members, on top of the token's rules; members hear `channel:updated` and
//! `channel:deleted`, and every pod removes from the room the local connections a change
//! no longer admits.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::GLOBAL_PRESENCE_ROOM;
use super::{
    now_ms, rfc3339_of_ms, ChatError, ChatEvent, ChatService, Receipt, RoomName, Selection, Sender,
    USER_ROOM_PREFIX,
};

/// Longest channel title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest channel topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 500;
/// Members a private channel has at most.
pub const MAX_CHANNEL_MEMBERS: usize = 1000;
/// Longest member id, in bytes.
const MAX_MEMBER_ID: usize = 256;
/// Channels one listing returns at most.
pub const MAX_CHANNEL_PAGE: usize = 100;
/// Who created a channel through the server API without naming a user.
pub const SERVER_CREATOR: &str = "server";

/// A room as a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// The room.
    pub room: RoomName,
    /// What clients show as its name.
    pub title: String,
    /// What it is about (may be empty).
    pub topic: String,
    /// Whether only its members may join it and read it.
    pub private: bool,
    /// The user id that created it (`server` for the backend).
    pub created_by: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// A private channel's members (user ids, sorted; the creator included); empty for a
    /// public one.
    pub members: Vec<String>,
}

/// What a create request names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// The room.
    pub room: String,
    /// Its title (default: the room's name).
    #[serde(default)]
    pub title: Option<String>,
    /// Its topic (default: none).
    #[serde(default)]
    pub topic: Option<String>,
    /// Private: only `members` (and the creator) may join it.
    #[serde(default)]
    pub private: bool,
    /// A private channel's members besides the creator.
    #[serde(default)]
    pub members: Vec<String>,
    /// Server API only: the user it is created for (default `server`).
    #[serde(default)]
    pub created_by: Option<String>,
}

/// What an update request changes; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelChange {
    /// A new title.
    #[serde(default)]
    pub title: Option<String>,
    /// A new topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// Private or public from now on.
    #[serde(default)]
    pub private: Option<bool>,
    /// Members to add (a private channel's).
    #[serde(default)]
    pub add_members: Vec<String>,
    /// Members to remove (never the creator).
    #[serde(default)]
    pub remove_members: Vec<String>,
}

/// Who changes channels: a user (a token named them), or the application's backend.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A user; anonymous connections may not create or change channels.
    User(&'a Sender),
    /// The server API (an API key).
    Backend,
}

fn text(field: &str, raw: &str, max: usize, allow_empty: bool) -> Result<String, ChatError> {
    let value = raw.trim();
    if value.is_empty() && !allow_empty {
        return Err(ChatError::invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ChatError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ChatError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

fn member_id(raw: &str) -> Result<String, ChatError> {
    if raw.is_empty() || raw.len() > MAX_MEMBER_ID || raw.chars().any(char::is_control) {
        return Err(ChatError::invalid(format!(
            "a member is a user id of 1-{MAX_MEMBER_ID} bytes without control characters"
        )));
    }
    Ok(raw.to_owned())
}

/// Whether `room` may be a channel: not a user's own room, a thread's or
/// `presence:global`.
fn channel_room(raw: &str) -> Result<RoomName, ChatError> {
    let room = RoomName::parse(raw)?;
    if room.is_thread() || room.as_str().starts_with(USER_ROOM_PREFIX) || room.is_global_presence()
    {
        return Err(ChatError::invalid(format!(
            "room {room} cannot be a channel (user:, thread: and presence:global rooms are the server's)"
        )));
    }
    Ok(room)
}

fn no_channel(room: &RoomName) -> ChatError {
    ChatError::NotFound(format!("room {room} has no channel"))
}

/// Now, to the millisecond (as the database keeps it).
fn now() -> String {
    rfc3339_of_ms(now_ms())
}

impl Channel {
    /// Applies `change`, checked, at `now`.
    fn changed(mut self, change: ChannelChange, now: String) -> Result<Self, ChatError> {
        if let Some(title) = change.title {
            self.title = text("title", &title, MAX_TITLE_CHARS, false)?;
        }
        if let Some(topic) = change.topic {
            self.topic = text("topic", &topic, MAX_TOPIC_CHARS, true)?;
        }
        if let Some(private) = change.private {
            self.private = private;
        }
        for removed in &change.remove_members {
            if *removed == self.created_by {
                return Err(ChatError::invalid("the creator stays a member"));
            }
            self.members.retain(|m| m != removed);
        }
        for added in change.add_members {
            self.members.push(member_id(&added)?);
        }
        self.settle_members()?;
        self.updated_at = now;
        Ok(self)
    }

    /// Sorts and dedups the members (the creator included) of a private channel; a public
    /// one has none.
    fn settle_members(&mut self) -> Result<(), ChatError> {
        if !self.private {
            self.members.clear();
            return Ok(());
        }
        if self.created_by != SERVER_CREATOR {
            self.members.push(self.created_by.clone());
        }
        self.members.sort();
        self.members.dedup();
        if self.members.len() > MAX_CHANNEL_MEMBERS {
            return Err(ChatError::invalid(format!(
                "a private channel has at most {MAX_CHANNEL_MEMBERS} members"
            )));
        }
        Ok(())
    }

    /// Whether `user` may join it.
    pub fn admits(&self, user: &str) -> bool {
        !self.private
            || self
                .members
                .binary_search_by(|m| m.as_str().cmp(user))
                .is_ok()
    }
}

impl Actor<'_> {
    /// The user id it acts as, refusing anonymous connections.
    fn user(&self) -> Result<Option<&str>, ChatError> {
        match self {
            Actor::Backend => Ok(None),
            Actor::User(sender) if sender.anonymous => Err(ChatError::AuthFailed(
                "channels are created and changed by a user: send a token".into(),
            )),
            // The name the server API's channels are created by is nobody's.
            Actor::User(sender) if sender.user == SERVER_CREATOR => Err(ChatError::Forbidden(
                format!("user id {SERVER_CREATOR:?} is the server API's"),
            )),
            Actor::User(sender) => Ok(Some(sender.user.as_str())),
        }
    }

    /// Whether it may change or delete `channel`: its creator, or the backend.
    fn may_change(&self, channel: &Channel) -> Result<(), ChatError> {
        match self.user()? {
            None => Ok(()),
            Some(user) if user == channel.created_by => Ok(()),
            Some(_) => Err(ChatError::Forbidden(format!(
                "only the creator of channel {} (or the server API) changes it",
                channel.room
            ))),
        }
    }
}

impl ChatService {
    /// Whether `sender` may join and read `room`: the token's rules, then, for a private
    /// channel, its members.
    pub async fn admits(&self, sender: &Sender, room: &RoomName) -> Result<(), ChatError> {
        sender.may_join(room)?;
        if room.is_thread() || room.as_str().starts_with(USER_ROOM_PREFIX) {
            return Ok(());
        }
        match self.channels.private_member(room, &sender.user).await? {
            Some(false) => Err(ChatError::Forbidden(format!(
                "room {room} is a private channel; ask its creator to add you"
            ))),
            _ => Ok(()),
        }
    }

    /// Those of `rooms` that `sender` may join and read, in their order.
    pub async fn open_to(
        &self,
        sender: &Sender,
        mut rooms: Vec<RoomName>,
    ) -> Result<Vec<RoomName>, ChatError> {
        rooms.retain(|room| sender.may_join(room).is_ok());
        if rooms.is_empty() {
            return Ok(rooms);
        }
        let closed = self.channels.closed_to(&rooms, &sender.user).await?;
        rooms.retain(|room| !closed.contains(room));
        Ok(rooms)
    }

    /// Joins `room` if `sender` may ([`ChatService::admits`]), like [`ChatService::join`].
    /// A channel change told to this pod between the check and the join is checked again.
    pub async fn join_admitted(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
    ) -> Result<Receipt, ChatError> {
        let epoch = self.channel_epoch.load(Ordering::Acquire);
        self.admits(sender, room).await?;
        let receipt = self.join(sender, room)?;
        if self.channel_epoch.load(Ordering::Acquire) != epoch {
            if let Err(e) = self.admits(sender, room).await {
                self.leave(sender, room);
                return Err(e);
            }
        }
        Ok(receipt)
    }

    /// Creates a channel; its room hears `channel:updated` (and a private one keeps only
    /// its members).
    pub async fn create_channel(
        &self,
        actor: Actor<'_>,
        new: NewChannel,
    ) -> Result<Channel, ChatError> {
        let room = channel_room(&new.room)?;
        let created_by = match (actor.user()?, new.created_by) {
            (Some(_), Some(_)) => {
                return Err(ChatError::invalid(
                    "created_by is the server API's (a user creates as themselves)",
                ))
            }
            (Some(user), None) => user.to_owned(),
            (None, Some(user)) => member_id(&user)?,
            (None, None) => SERVER_CREATOR.to_owned(),
        };
        if let Actor::User(sender) = actor {
            sender.may_join(&room)?;
            self.unused(&room).await?;
        }
        let now = now();
        let members = new
            .members
            .iter()
            .map(|m| member_id(m))
            .collect::<Result<Vec<_>, _>>()?;
        let mut channel = Channel {
            title: match new.title {
                Some(title) => text("title", &title, MAX_TITLE_CHARS, false)?,
                None => room.to_string(),
            },
            topic: text(
                "topic",
                new.topic.as_deref().unwrap_or(""),
                MAX_TOPIC_CHARS,
                true,
            )?,
            room,
            private: new.private,
            created_by,
            created_at: now.clone(),
            updated_at: now,
            members,
        };
        channel.settle_members()?;
        self.channels.create_channel(&channel).await?;
        self.channel_changed(&channel);
        Ok(channel)
    }

    /// The channel of `room`, for a caller that may read it (a private one: its members
    /// and the backend; to others it does not exist).
    pub async fn channel(
        &self,
        caller: Option<&Sender>,
        room: &RoomName,
    ) -> Result<Channel, ChatError> {
        let missing = || no_channel(room);
        if let Some(sender) = caller {
            sender.may_join(room).map_err(|_| missing())?;
        }
        let channel = self.channels.channel(room).await?.ok_or_else(missing)?;
        match caller {
            Some(sender) if !channel.admits(&sender.user) => Err(missing()),
            _ => Ok(channel),
        }
    }

    /// Up to `limit` channels the caller may see, by room name after `after`; whether
    /// there are more.
    pub async fn list_channels(
        &self,
        caller: Option<&Sender>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Channel>, bool), ChatError> {
        if limit == 0 || limit > MAX_CHANNEL_PAGE {
            return Err(ChatError::invalid(format!(
                "limit must be 1-{MAX_CHANNEL_PAGE}"
            )));
        }
        let user = caller.map(|s| s.user.as_str());
        let mut channels = self.channels.list_channels(user, after, limit + 1).await?;
        if let Some(sender) = caller {
            // Under ROOM_ACL=claims a token may not grant every public channel.
            channels.retain(|c| sender.may_join(&c.room).is_ok());
        }
        let more = channels.len() > limit;
        channels.truncate(limit);
        Ok((channels, more))
    }

    /// Changes the channel of `room` (its creator, or the backend); members hear
    /// `channel:updated`, and connections it no longer admits leave the room.
    pub async fn update_channel(
        &self,
        actor: Actor<'_>,
        room: &RoomName,
        change: ChannelChange,
    ) -> Result<Channel, ChatError> {
        let current = self.changeable(actor, room).await?;
        let channel = current.changed(change, now())?;
        self.channels.update_channel(&channel).await?;
        self.channel_changed(&channel);
        Ok(channel)
    }

    /// Deletes the channel of `room` and its messages (its creator, or the backend);
    /// members hear `channel:deleted`, then leave the room on every pod.
    pub async fn delete_channel(&self, actor: Actor<'_>, room: &RoomName) -> Result<(), ChatError> {
        self.changeable(actor, room).await?;
        if !self.channels.delete_channel(room).await? {
            return Err(no_channel(room));
        }
        drop(self.emit(ChatEvent::ChannelDeleted { room: room.clone() }, None));
        Ok(())
    }

    /// Refuses a room in use (stored messages, or members on any pod): a user makes only
    /// a new room a channel, so nobody takes over a room others made, nor deletes their
    /// messages with it. The server API may make any room a channel.
    async fn unused(&self, room: &RoomName) -> Result<(), ChatError> {
        let has_messages = self.log.bounds(room).await?.last > 0;
        let has_members = (self.active_rooms().await?)
            .iter()
            .any(|(r, n)| r == room.as_str() && *n > 0);
        if has_messages || has_members {
            return Err(ChatError::Forbidden(format!(
                "room {room} is in use (it has messages or members): only the server API \
                 makes an existing room a channel"
            )));
        }
        Ok(())
    }

    /// The channel of `room` if `actor` may change it: to a user who may not even see a
    /// private one, it does not exist.
    async fn changeable(&self, actor: Actor<'_>, room: &RoomName) -> Result<Channel, ChatError> {
        let current = (self.channels.channel(room).await?).ok_or_else(|| no_channel(room))?;
        if let Actor::User(sender) = actor {
            if !current.admits(&sender.user) {
                return Err(no_channel(room));
            }
        }
        actor.may_change(&current)?;
        Ok(current)
    }

    /// Checks the local members of every private channel with members here against it:
    /// a pod that missed a change (the bus lost it, or was down) applies it within a
    /// heartbeat. Where someone is no longer admitted, the room hears `channel:updated`
    /// (here only) and they leave.
    pub(super) async fn recheck_channels(&self) {
        let rooms: Vec<RoomName> = (self.membership().rooms().into_iter())
            .map(|(room, _)| room)
            .filter(|room| !room.is_thread() && !room.as_str().starts_with(USER_ROOM_PREFIX))
            .collect();
        if rooms.is_empty() {
            return;
        }
        let private = match self.channels.private_channels(&rooms).await {
            Ok(private) => private,
            Err(e) => return tracing::debug!(error = %e, "private channels not rechecked"),
        };
        for channel in private {
            let stale =
                (self.local_members(&channel.room).iter()).any(|(_, user)| !channel.admits(user));
            if stale {
                tracing::info!(room = %channel.room, "a missed channel change applied");
                self.deliver_local(&super::Delivery::new(
                    ChatEvent::ChannelUpdated { channel },
                    None,
                ));
            }
        }
    }

    /// This pod's connections in `room`, with their users.
    fn local_members(&self, room: &RoomName) -> Vec<(super::ConnId, String)> {
        let selection = Selection {
            rooms: vec![room.clone()],
            except: Vec::new(),
        };
        (self.membership().conns_selected(&selection).into_iter())
            // A socket.io connection is also "in" the room named by its id.
            .filter(|(conn, _, _)| self.membership().is_member(conn, room))
            .map(|(conn, user, _)| (conn, user))
            .collect()
    }

    fn channel_changed(&self, channel: &Channel) {
        drop(self.emit(
            ChatEvent::ChannelUpdated {
                channel: channel.clone(),
            },
            None,
        ));
    }

    /// This pod's part of a channel change, after the room heard it: connections the
    /// channel no longer admits (every one, when it was deleted) leave the room.
    pub(super) fn apply_channel(&self, room: &RoomName, channel: Option<&Channel>) {
        self.channel_epoch.fetch_add(1, Ordering::AcqRel);
        let Some(chat) = self.me.upgrade() else {
            return;
        };
        for (conn, user) in self.local_members(room) {
            if channel.is_none_or(|c| !c.admits(&user)) {
                chat.leave_conn(&conn, &user, room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(private: bool) -> Channel {
        Channel {
            room: RoomName::parse("team").unwrap(),
            title: "Team".into(),
            topic: String::new(),
            private,
            created_by: "ada".into(),
            created_at: now(),
            updated_at: now(),
            members: Vec::new(),
        }
    }

    #[test]
    fn private_channels_admit_their_members_and_keep_their_creator() {
        let mut c = channel(true);
        c.members = vec!["zoe".into(), "bob".into(), "bob".into()];
        c.settle_members().unwrap();
        assert_eq!(c.members, ["ada", "bob", "zoe"]);
        assert!(c.admits("bob") && c.admits("ada") && !c.admits("eve"));
        let removing_creator = ChannelChange {
            remove_members: vec!["ada".into()],
            ..Default::default()
        };
        assert!(c.clone().changed(removing_creator, now()).is_err());
        let public = c
            .changed(
                ChannelChange {
                    private: Some(false),
                    ..Default::default()
                },
                now(),
            )
            .unwrap();
        assert!(public.members.is_empty() && public.admits("eve"));
    }

    #[test]
    fn titles_topics_and_rooms_are_checked() {
        assert!(text("title", "  ", MAX_TITLE_CHARS, false).is_err());
        assert_eq!(text("topic", " ", MAX_TOPIC_CHARS, true).unwrap(), "");
        assert!(text(
            "title",
            &"x".repeat(MAX_TITLE_CHARS + 1),
            MAX_TITLE_CHARS,
            false
        )
        .is_err());
        assert!(text("title", "a\nb", MAX_TITLE_CHARS, false).is_err());
        for bad in ["user:ada", "thread:x", GLOBAL_PRESENCE_ROOM, "bad name"] {
            assert!(channel_room(bad).is_err(), "{bad}");
        }
        assert!(channel_room("general").is_ok());
        let mut big = channel(true);
        big.members = (0..=MAX_CHANNEL_MEMBERS).map(|i| format!("u{i}")).collect();
        assert!(big.settle_members().is_err());
    }
}
