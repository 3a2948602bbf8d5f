//! Room names: parsed once at the edge, valid everywhere inside.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ChatError;

/// Longest room name accepted, in characters (all ASCII).
pub const MAX_ROOM_NAME_LEN: usize = 128;

/// A valid room name: 1-128 characters of `[A-Za-z0-9_.:-]`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Validates `raw` as a room name.
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        if raw.is_empty() {
            return Err(ChatError::invalid("room name is empty"));
        }
        if raw.len() > MAX_ROOM_NAME_LEN {
            return Err(ChatError::invalid(format!(
                "room name is longer than {MAX_ROOM_NAME_LEN} characters"
            )));
        }
        if let Some(bad) = raw.chars().find(|c| !is_room_char(*c)) {
            return Err(ChatError::invalid(format!(
                "room name has a character outside [A-Za-z0-9_.:-]: {bad:?}"
            )));
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The room of the thread whose root is message `root`: `thread:{root}`.
    pub fn of_thread(root: uuid::Uuid) -> Self {
        Self(Arc::from(format!("{THREAD_PREFIX}{root}")))
    }

    /// Whether this is a thread's room.
    pub fn is_thread(&self) -> bool {
        self.0.starts_with(THREAD_PREFIX)
    }

    /// The room whose members hear every user's online and offline,
    /// [`GLOBAL_PRESENCE_ROOM`].
    pub fn global_presence() -> Self {
        static ROOM: std::sync::OnceLock<RoomName> = std::sync::OnceLock::new();
        ROOM.get_or_init(|| Self(Arc::from(GLOBAL_PRESENCE_ROOM)))
            .clone()
    }

    /// Whether this is [`GLOBAL_PRESENCE_ROOM`].
    pub fn is_global_presence(&self) -> bool {
        &*self.0 == GLOBAL_PRESENCE_ROOM
    }
}

/// The room whose members hear every user's online and offline (`presence:update`):
/// every connection counts as present in it; nobody sends to it.
pub const GLOBAL_PRESENCE_ROOM: &str = "presence:global";

/// Rooms of threads are named `thread:{root id}`; they are opened with `thread:open`,
/// never joined by name.
pub const THREAD_PREFIX: &str = "thread:";

/// The room of the thread whose root is `root`.
pub fn thread_room(root: uuid::Uuid) -> RoomName {
    RoomName::of_thread(root)
}

/// The root message of the thread whose room is named `room`, if it is one.
pub fn thread_root(room: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(room.strip_prefix(THREAD_PREFIX)?).ok()
}

fn is_room_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(de)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in [
            "lobby",
            "a",
            "user:42",
            "team-1.general_x",
            &"x".repeat(128),
        ] {
            assert_eq!(
                RoomName::parse(ok).map(|r| r.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "x".repeat(129);
        for bad in [
            "", " ", "a b", "lobby/1", "lоbby", "ro\0om", "é", "a\n", &long,
        ] {
            let err = RoomName::parse(bad).unwrap_err();
            assert_eq!(
                err.code(),
                crate::chat::ErrorCode::InvalidPayload,
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_exactly_the_alphabet(s in "\\PC{0,200}") {
            let valid = !s.is_empty() && s.len() <= 128 && s.chars().all(is_room_char);
            prop_assert_eq!(RoomName::parse(&s).is_ok(), valid);
        }
    }
}
