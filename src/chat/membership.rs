//! Who is connected to this pod and which rooms each connection is in, for both
//! transports. The bus learns from here when this pod gains or loses interest in a room.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::RoomName;

/// Identifier of one local connection (a socket.io sid or a raw WebSocket client id).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConnId(Arc<str>);

impl ConnId {
    /// Wraps an identifier assigned by a transport.
    pub fn new(id: impl AsRef<str>) -> Self {
        Self(Arc::from(id.as_ref()))
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Socket.IO (WebSocket or HTTP long-polling).
    SocketIo,
    /// The raw `realtime.Message` WebSocket protocol.
    Ws,
}

/// Effect of a membership change on this pod's interest in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The room just got its first local member.
    Gained,
    /// The room just lost its last local member.
    Lost,
    /// The number of local members changed but stayed above zero, or nothing changed.
    Unchanged,
}

/// A connection that left: who it was and the rooms it was in.
#[derive(Debug, PartialEq, Eq)]
pub struct Departed {
    /// Its user.
    pub user: String,
    /// Its transport.
    pub transport: Transport,
    /// Each room it was in, and whether the room lost its last local member.
    pub rooms: Vec<(RoomName, Interest)>,
}

/// Connection and room counts of this pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MembershipCounts {
    /// Open socket.io connections.
    pub socketio: usize,
    /// Open raw WebSocket connections.
    pub ws: usize,
    /// Rooms with at least one local member.
    pub rooms: usize,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<RoomName, HashSet<ConnId>>,
    conns: HashMap<ConnId, Conn>,
}

struct Conn {
    transport: Transport,
    user: String,
    rooms: HashSet<RoomName>,
}

/// The local membership table. All operations are short critical sections.
#[derive(Default)]
pub struct Membership {
    inner: Mutex<Inner>,
}

impl Membership {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it half-updated in a way that
        // matters more than stopping the chat: keep serving with the data as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection of `user` (in no room yet).
    pub fn connect(&self, conn: ConnId, transport: Transport, user: &str) {
        self.lock().conns.insert(
            conn,
            Conn {
                transport,
                user: user.to_owned(),
                rooms: HashSet::new(),
            },
        );
    }

    /// How many of `user`'s connections are in `room`.
    pub fn user_conns_in(&self, room: &RoomName, user: &str) -> usize {
        let inner = self.lock();
        inner.rooms.get(room).map_or(0, |members| {
            members
                .iter()
                .filter(|c| inner.conns.get(*c).is_some_and(|c| c.user == user))
                .count()
        })
    }

    /// The rooms `conn` is in.
    pub fn rooms_of(&self, conn: &ConnId) -> Vec<RoomName> {
        self.lock()
            .conns
            .get(conn)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds `conn` to `room`: whether it was not a member yet, and the pod's interest.
    /// `None` when the connection is unknown.
    pub fn join(&self, conn: &ConnId, room: &RoomName) -> Option<(bool, Interest)> {
        let mut inner = self.lock();
        let entry = inner.conns.get_mut(conn)?;
        if !entry.rooms.insert(room.clone()) {
            return Some((false, Interest::Unchanged));
        }
        let members = inner.rooms.entry(room.clone()).or_default();
        members.insert(conn.clone());
        Some(if members.len() == 1 {
            (true, Interest::Gained)
        } else {
            (true, Interest::Unchanged)
        })
    }

    /// Removes `conn` from `room`.
    pub fn leave(&self, conn: &ConnId, room: &RoomName) -> Interest {
        let mut inner = self.lock();
        let was_member = inner
            .conns
            .get_mut(conn)
            .is_some_and(|c| c.rooms.remove(room));
        if !was_member {
            return Interest::Unchanged;
        }
        remove_from_room(&mut inner.rooms, conn, room)
    }

    /// Forgets `conn`, returning its user, every room it was in and whether each lost
    /// its last local member.
    pub fn disconnect(&self, conn: &ConnId) -> Option<Departed> {
        let mut inner = self.lock();
        let entry = inner.conns.remove(conn)?;
        let rooms = entry
            .rooms
            .into_iter()
            .map(|room| {
                let interest = remove_from_room(&mut inner.rooms, conn, &room);
                (room, interest)
            })
            .collect();
        Some(Departed {
            user: entry.user,
            transport: entry.transport,
            rooms,
        })
    }

    /// Open connections of both transports.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Every connection of the given transport.
    pub fn connections_of(&self, transport: Transport) -> Vec<ConnId> {
        self.lock()
            .conns
            .iter()
            .filter(|(_, c)| c.transport == transport)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether `conn` is in `room`.
    pub fn is_member(&self, conn: &ConnId, room: &RoomName) -> bool {
        self.lock()
            .conns
            .get(conn)
            .is_some_and(|c| c.rooms.contains(room))
    }

    /// Number of local members of `room`.
    pub fn room_size(&self, room: &RoomName) -> usize {
        self.lock().rooms.get(room).map_or(0, HashSet::len)
    }

    /// Rooms with local members, with their member counts, sorted by name.
    pub fn rooms(&self) -> Vec<(RoomName, usize)> {
        let mut rooms: Vec<_> = self
            .lock()
            .rooms
            .iter()
            .map(|(r, m)| (r.clone(), m.len()))
            .collect();
        rooms.sort();
        rooms
    }

    /// Connection and room counts.
    pub fn counts(&self) -> MembershipCounts {
        let inner = self.lock();
        let mut counts = MembershipCounts {
            rooms: inner.rooms.len(),
            ..Default::default()
        };
        for conn in inner.conns.values() {
            match conn.transport {
                Transport::SocketIo => counts.socketio += 1,
                Transport::Ws => counts.ws += 1,
            }
        }
        counts
    }
}

fn remove_from_room(
    rooms: &mut HashMap<RoomName, HashSet<ConnId>>,
    conn: &ConnId,
    room: &RoomName,
) -> Interest {
    let Some(members) = rooms.get_mut(room) else {
        return Interest::Unchanged;
    };
    members.remove(conn);
    if members.is_empty() {
        rooms.remove(room);
        Interest::Lost
    } else {
        Interest::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    #[test]
    fn interest_follows_first_join_and_last_leave() {
        let m = Membership::default();
        let (a, b) = (ConnId::new("a"), ConnId::new("b"));
        m.connect(a.clone(), Transport::Ws, "ann");
        m.connect(b.clone(), Transport::SocketIo, "bob");
        assert_eq!(m.join(&a, &room("r")), Some((true, Interest::Gained)));
        assert_eq!(m.join(&a, &room("r")), Some((false, Interest::Unchanged)));
        assert_eq!(m.join(&b, &room("r")), Some((true, Interest::Unchanged)));
        assert_eq!(m.leave(&a, &room("r")), Interest::Unchanged);
        assert_eq!(m.leave(&a, &room("r")), Interest::Unchanged);
        assert_eq!(m.user_conns_in(&room("r"), "bob"), 1);
        assert_eq!(
            m.disconnect(&b),
            Some(Departed {
                user: "bob".to_owned(),
                transport: Transport::SocketIo,
                rooms: vec![(room("r"), Interest::Lost)]
            })
        );
        assert_eq!(
            m.counts(),
            MembershipCounts {
                socketio: 0,
                ws: 1,
                rooms: 0
            }
        );
        assert_eq!(m.join(&ConnId::new("ghost"), &room("r")), None);
    }
}
