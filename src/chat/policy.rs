//! Who may join which room: every user owns `user:{id}`, which nobody else (and no
//! anonymous client) may join; with a room ACL, a user joins only rooms matching the
//! patterns its token grants.

use std::net::IpAddr;
use std::sync::Arc;

use super::{ChatError, ConnId, RoomName};

/// Prefix of the per-user rooms.
pub const USER_ROOM_PREFIX: &str = "user:";

/// A room pattern from a token's `rooms` claim: a room name where `*` matches any run
/// of characters (e.g. `team-*`, `public:*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPattern(String);

impl RoomPattern {
    /// Accepts a pattern of room-name characters and `*`, 1-128 characters.
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        let literal = raw.replace('*', "x");
        RoomName::parse(&literal)
            .map_err(|_| ChatError::AuthFailed(format!("bad room pattern {raw:?} in token")))?;
        Ok(Self(raw.to_owned()))
    }

    /// Whether `room` matches.
    pub fn matches(&self, room: &RoomName) -> bool {
        glob_match(self.0.as_bytes(), room.as_str().as_bytes())
    }
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`: linear-ish, no recursion.
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] != b'*' && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Who is acting: the connection and its identity.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The local connection.
    pub conn: ConnId,
    /// The identity written into `from`: the token's `sub`, or the client id.
    pub user: String,
    /// Display name (the token's `name`, the backend's, or the client's own choice).
    pub name: Option<String>,
    /// Whether `name` is the client's own choice ([`Sender::choose_name`]).
    pub name_unverified: bool,
    /// Whether the connection presented no token.
    pub anonymous: bool,
    /// With ROOM_ACL=claims: the rooms this user may join.
    pub allowed_rooms: Option<Arc<[RoomPattern]>>,
    /// Whether this identity may send room-less (global) messages, which reach every
    /// connection: always under ROOM_ACL=none; under claims only with `"global": true`.
    pub may_post_globally: bool,
    /// The client's address, for per-address rate limits (none for internal callers).
    pub ip: Option<IpAddr>,
}

impl Sender {
    /// An anonymous connection, known by its client id.
    pub fn anonymous(conn: ConnId) -> Self {
        Self {
            user: conn.to_string(),
            conn,
            name: None,
            name_unverified: false,
            anonymous: true,
            allowed_rooms: None,
            may_post_globally: true,
            ip: None,
        }
    }

    /// An anonymous connection under ROOM_ACL=claims: no token, so no room grants and
    /// no global messages.
    pub fn anonymous_without_grants(conn: ConnId) -> Self {
        Self {
            allowed_rooms: Some(Arc::from(Vec::new())),
            may_post_globally: false,
            ..Self::anonymous(conn)
        }
    }

    /// Whether this identity may send a room-less (global) message.
    pub fn may_post_global(&self) -> Result<(), ChatError> {
        if self.may_post_globally {
            Ok(())
        } else {
            Err(ChatError::Forbidden(
                "your token does not grant global messages (claim \"global\": true); send to a room".into(),
            ))
        }
    }

    /// How others see this user.
    pub fn user_ref(&self) -> super::UserRef {
        super::UserRef {
            id: self.user.clone(),
            name: self.name.clone().unwrap_or_else(|| self.user.clone()),
            unverified: self.name_unverified && self.name.is_some(),
        }
    }

    /// The sender as a message names it: `None` without a display name (then `from`
    /// is all there is).
    pub fn message_user(&self) -> Option<super::UserRef> {
        self.name.as_ref().map(|_| self.user_ref())
    }

    /// Takes the client's own display name (already checked by [`display_name`]) when
    /// nobody vouched for one: a token's or the backend's name wins. Marked unverified.
    pub fn choose_name(&mut self, name: String) {
        if self.name.is_none() || self.name_unverified {
            self.name = Some(name);
            self.name_unverified = true;
        }
    }

    /// This user's own room, `user:{id}` (none for anonymous clients or ids that are
    /// not valid in a room name).
    pub fn own_room(&self) -> Option<RoomName> {
        if self.anonymous {
            return None;
        }
        RoomName::parse(&format!("{USER_ROOM_PREFIX}{}", self.user)).ok()
    }

    /// Whether this identity may join `room`. A thread's room is never joined by name:
    /// `thread:open` checks its root's room instead.
    pub fn may_join(&self, room: &RoomName) -> Result<(), ChatError> {
        if room.is_thread() {
            return Err(ChatError::Forbidden(
                "a thread is opened with thread:open {room, id}, not joined by name".into(),
            ));
        }
        if room.is_global_presence() && self.anonymous {
            return Err(ChatError::Forbidden(
                "presence:global names everyone online: it is for users a token names".into(),
            ));
        }
        if room.as_str().starts_with(USER_ROOM_PREFIX) {
            if self.anonymous {
                return Err(ChatError::Forbidden(
                    "anonymous clients may not join user rooms".into(),
                ));
            }
            if self.own_room().as_ref() != Some(room) {
                return Err(ChatError::Forbidden(format!(
                    "room {room} belongs to another user"
                )));
            }
            return Ok(());
        }
        match &self.allowed_rooms {
            Some(patterns) if !patterns.iter().any(|p| p.matches(room)) => Err(
                ChatError::Forbidden(format!("your token does not grant room {room}")),
            ),
            _ => Ok(()),
        }
    }
}

/// Longest display name a client may choose, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// A display name a client chose (`auth.name`, `?name=`, a Streamly `username`):
/// trimmed, 1-64 characters, no control characters.
pub fn display_name(raw: &str) -> Result<String, ChatError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ChatError::invalid("name must not be empty"));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(ChatError::invalid(format!(
            "name is longer than {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ChatError::invalid(
            "name must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_like_globs() {
        let p = |s: &str| RoomPattern::parse(s).unwrap();
        assert!(p("team-*").matches(&room("team-1")));
        assert!(p("team-*").matches(&room("team-")));
        assert!(!p("team-*").matches(&room("teams")));
        assert!(p("*").matches(&room("anything")));
        assert!(p("a*b*c").matches(&room("aXXbYYc")));
        assert!(!p("a*b*c").matches(&room("aXXbYY")));
        assert!(p("lobby").matches(&room("lobby")));
        assert!(!p("lobby").matches(&room("lobby2")));
        assert!(RoomPattern::parse("bad pattern").is_err());
    }

    #[test]
    fn user_rooms_belong_to_their_user() {
        let mut alice = Sender::anonymous(ConnId::new("c1"));
        assert!(alice.may_join(&room("user:alice")).is_err());
        assert!(alice.may_join(&room("lobby")).is_ok());
        alice.anonymous = false;
        alice.user = "alice".into();
        assert!(alice.may_join(&room("user:alice")).is_ok());
        let err = alice.may_join(&room("user:bob")).unwrap_err();
        assert_eq!(err.code(), super::super::ErrorCode::Forbidden);
        alice.allowed_rooms = Some(Arc::from(vec![RoomPattern::parse("team-*").unwrap()]));
        assert!(alice.may_join(&room("team-9")).is_ok());
        assert!(alice.may_join(&room("lobby")).is_err());
        assert!(alice.may_join(&room("user:alice")).is_ok());
    }

    #[test]
    fn chosen_names_are_checked_and_never_replace_a_vouched_one() {
        assert_eq!(display_name("  Ada  ").unwrap(), "Ada");
        for bad in ["", "   ", "a\u{0}b", "line\nbreak"] {
            assert!(display_name(bad).is_err(), "{bad:?}");
        }
        assert!(display_name(&"é".repeat(MAX_DISPLAY_NAME_CHARS)).is_ok());
        assert!(display_name(&"é".repeat(MAX_DISPLAY_NAME_CHARS + 1)).is_err());

        let mut anon = Sender::anonymous(ConnId::new("c1"));
        assert_eq!(anon.message_user(), None);
        anon.choose_name("Ada".into());
        let user = anon.user_ref();
        assert_eq!((user.name.as_str(), user.unverified), ("Ada", true));
        anon.choose_name("Grace".into());
        assert_eq!(anon.user_ref().name, "Grace");

        let mut vouched = Sender::anonymous(ConnId::new("c2"));
        vouched.name = Some("Token Name".into());
        vouched.choose_name("Impostor".into());
        let user = vouched.user_ref();
        assert_eq!((user.name.as_str(), user.unverified), ("Token Name", false));
        assert_eq!(vouched.message_user(), Some(user));
    }

    #[test]
    fn anonymous_clients_under_claims_have_no_grants() {
        let anon = Sender::anonymous_without_grants(ConnId::new("c1"));
        assert!(anon.may_join(&room("lobby")).is_err());
        assert!(anon.may_post_global().is_err());
        assert!(Sender::anonymous(ConnId::new("c2"))
            .may_post_global()
            .is_ok());
    }
}
