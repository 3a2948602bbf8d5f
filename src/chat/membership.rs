//! The one index of who is connected to this pod and which rooms each connection is
//! in, for both transports: joins, leaves and disconnect cleanup happen here only. Local
//! fan-outs read a room's live members (with each connection's mailbox) from here; the
//! bus learns from here when this pod gains or loses interest in a room.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Socket.IO (WebSocket or HTTP long-polling).
    SocketIo,
    /// The raw `realtime.Message` WebSocket protocol.
    Ws,
}

impl Transport {
    /// The transport as metrics and logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SocketIo => "socketio",
            Self::Ws => "ws",
        }
    }
}

impl crate::telemetry::metrics::Label for Transport {
    fn label(self) -> &'static str {
        self.as_str()
    }
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

/// One of a user's connections on this pod, as the server API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UserConnection {
    /// The connection (socket.io sid or raw client id).
    pub conn: String,
    /// Its user.
    #[serde(default)]
    pub user: String,
    /// Its transport.
    pub transport: Transport,
    /// The rooms it is in, sorted.
    pub rooms: Vec<RoomName>,
    /// The client's address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// When it connected, in milliseconds since the Unix epoch (0: not known).
    #[serde(default)]
    pub connected_at_ms: u64,
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

/// A transport's handle on one connection (the raw side's outbox), kept with its
/// memberships so fan-out needs no second index. Opaque to the chat.
pub type Mailbox = Arc<dyn Any + Send + Sync>;

/// One connection in one room.
#[derive(Clone)]
pub struct Member {
    transport: Transport,
    mailbox: Option<Mailbox>,
    /// Live members get deliveries; a recovering one is not live until its hand-over.
    live: bool,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<RoomName, HashMap<ConnId, Member>>,
    conns: HashMap<ConnId, Conn>,
}

struct Conn {
    transport: Transport,
    user: String,
    name: Option<String>,
    name_unverified: bool,
    mailbox: Option<Mailbox>,
    rooms: HashSet<RoomName>,
    address: Option<IpAddr>,
    connected_at_ms: u64,
}

/// A connection being registered.
pub struct NewConnection<'a> {
    /// The connection.
    pub conn: ConnId,
    /// Its transport.
    pub transport: Transport,
    /// Its user.
    pub user: &'a str,
    /// The user's display name.
    pub name: Option<String>,
    /// Whether the name is the client's own choice.
    pub name_unverified: bool,
    /// The client's address.
    pub address: Option<IpAddr>,
}

/// Connections chosen by their rooms, as socket.io's broadcast operators choose them
/// (the Redis emitter's `to(...)` / `except(...)`): members of any of `rooms` (every
/// connection when empty) that are in none of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Selection {
    /// Members of any of these rooms; empty: every connection.
    pub rooms: Vec<RoomName>,
    /// Minus members of any of these.
    pub except: Vec<RoomName>,
}

impl Selection {
    /// Whether connection `id`, in `conn_rooms`, is chosen. As in socket.io, a
    /// connection is also in the room named by its own id.
    fn matches(&self, id: &ConnId, conn_rooms: &HashSet<RoomName>) -> bool {
        let in_room = |r: &RoomName| conn_rooms.contains(r) || r.as_str() == id.as_str();
        (self.rooms.is_empty() || self.rooms.iter().any(in_room))
            && !self.except.iter().any(in_room)
    }
}

enum Target {
    Room(RoomName),
    All,
    Selected(Selection),
}

/// Who a delivery goes to: a room's live members, every connection, or a selection.
pub struct Recipients<'a> {
    inner: RwLockReadGuard<'a, Inner>,
    target: Target,
}

impl Recipients<'_> {
    /// Calls `f` with each recipient of `transport` and its mailbox.
    pub fn for_each(&self, transport: Transport, mut f: impl FnMut(&ConnId, Option<&Mailbox>)) {
        match &self.target {
            Target::Room(room) => {
                for (conn, member) in self.inner.rooms.get(room).into_iter().flatten() {
                    if member.live && member.transport == transport {
                        f(conn, member.mailbox.as_ref());
                    }
                }
            }
            Target::All => {
                for (conn, c) in &self.inner.conns {
                    if c.transport == transport {
                        f(conn, c.mailbox.as_ref());
                    }
                }
            }
            Target::Selected(selection) => {
                for (conn, c) in &self.inner.conns {
                    if c.transport == transport && selection.matches(conn, &c.rooms) {
                        f(conn, c.mailbox.as_ref());
                    }
                }
            }
        }
    }

    /// Number of recipients of both transports (members still recovering included: a
    /// count for metrics, in constant time but for selections).
    pub fn len(&self) -> usize {
        match &self.target {
            Target::Room(room) => self.inner.rooms.get(room).map_or(0, HashMap::len),
            Target::All => self.inner.conns.len(),
            Target::Selected(selection) => self
                .inner
                .conns
                .iter()
                .filter(|(id, c)| selection.matches(id, &c.rooms))
                .count(),
        }
    }

    /// Whether there is no recipient.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `conn` is a recipient.
    pub fn contains(&self, conn: &ConnId) -> bool {
        match &self.target {
            Target::Room(room) => self
                .inner
                .rooms
                .get(room)
                .and_then(|m| m.get(conn))
                .is_some_and(|m| m.live),
            Target::All => self.inner.conns.contains_key(conn),
            Target::Selected(selection) => self
                .inner
                .conns
                .get(conn)
                .is_some_and(|c| selection.matches(conn, &c.rooms)),
        }
    }
}

/// The local membership table. All operations are short critical sections; deliveries
/// read it concurrently.
#[derive(Default)]
pub struct Membership {
    inner: RwLock<Inner>,
}

impl Membership {
    fn lock(&self) -> RwLockWriteGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it half-updated in a way that
        // matters more than stopping the chat: keep serving with the data as it is.
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection of `user` (in no room yet), with its transport's
    /// `mailbox` for fan-out.
    pub fn connect(
        &self,
        conn: ConnId,
        transport: Transport,
        user: &str,
        mailbox: Option<Mailbox>,
    ) {
        self.connect_from(
            NewConnection {
                conn,
                transport,
                user,
                name: None,
                name_unverified: false,
                address: None,
            },
            mailbox,
        );
    }

    /// [`Membership::connect`] with the user's display name and the client's address;
    /// the connection as listed ([`UserConnection`]).
    pub fn connect_from(&self, new: NewConnection<'_>, mailbox: Option<Mailbox>) -> UserConnection {
        let connected_at_ms = super::now_ms();
        let listed = UserConnection {
            conn: new.conn.to_string(),
            user: new.user.to_owned(),
            transport: new.transport,
            rooms: Vec::new(),
            address: new.address,
            connected_at_ms,
        };
        self.lock().conns.insert(
            new.conn,
            Conn {
                transport: new.transport,
                user: new.user.to_owned(),
                name: new.name,
                name_unverified: new.name_unverified,
                mailbox,
                rooms: HashSet::new(),
                address: new.address,
                connected_at_ms,
            },
        );
        listed
    }

    /// The recipients of a delivery to `room` (every connection when `None`), read while
    /// the returned value lives.
    pub fn recipients(&self, room: Option<&RoomName>) -> Recipients<'_> {
        Recipients {
            inner: self.read(),
            target: room.map_or(Target::All, |r| Target::Room(r.clone())),
        }
    }

    /// The connections `selection` chooses, read while the returned value lives.
    pub fn selected(&self, selection: &Selection) -> Recipients<'_> {
        Recipients {
            inner: self.read(),
            target: Target::Selected(selection.clone()),
        }
    }

    /// The connections `selection` chooses, with their users and transports.
    pub fn conns_selected(&self, selection: &Selection) -> Vec<(ConnId, String, Transport)> {
        self.read()
            .conns
            .iter()
            .filter(|(id, c)| selection.matches(id, &c.rooms))
            .map(|(id, c)| (id.clone(), c.user.clone(), c.transport))
            .collect()
    }

    /// The display name `conn` connected with, and whether it was the client's own
    /// choice (unverified).
    pub fn name_of(&self, conn: &ConnId) -> (Option<String>, bool) {
        self.read()
            .conns
            .get(conn)
            .map_or((None, false), |c| (c.name.clone(), c.name_unverified))
    }

    /// Makes `conn`, a member of `room`, get deliveries from now on; its transport, when
    /// it was not live yet.
    pub fn set_live(&self, conn: &ConnId, room: &RoomName) -> Option<Transport> {
        let mut inner = self.lock();
        let member = inner.rooms.get_mut(room)?.get_mut(conn)?;
        (!std::mem::replace(&mut member.live, true)).then_some(member.transport)
    }

    /// How many of `user`'s connections are in `room`.
    pub fn user_conns_in(&self, room: &RoomName, user: &str) -> usize {
        let inner = self.read();
        inner.rooms.get(room).map_or(0, |members| {
            members
                .keys()
                .filter(|c| inner.conns.get(*c).is_some_and(|c| c.user == user))
                .count()
        })
    }

    /// Every connection of `user` here (of everyone when `None`, at most `limit`), with
    /// its transport and rooms.
    pub fn connections_of_user(&self, user: Option<&str>, limit: usize) -> Vec<UserConnection> {
        let inner = self.read();
        let mut found: Vec<UserConnection> = inner
            .conns
            .iter()
            .filter(|(_, c)| user.is_none_or(|u| c.user == u))
            .take(limit)
            .map(|(id, c)| {
                let mut rooms: Vec<RoomName> = c.rooms.iter().cloned().collect();
                rooms.sort();
                UserConnection {
                    conn: id.to_string(),
                    user: c.user.clone(),
                    transport: c.transport,
                    rooms,
                    address: c.address,
                    connected_at_ms: c.connected_at_ms,
                }
            })
            .collect();
        found.sort_by(|a, b| a.conn.cmp(&b.conn));
        found
    }

    /// `user`'s connections here, with their transports; only those in `room` when given.
    pub fn conns_of_user(&self, user: &str, room: Option<&RoomName>) -> Vec<(ConnId, Transport)> {
        self.read()
            .conns
            .iter()
            .filter(|(_, c)| c.user == user && room.is_none_or(|r| c.rooms.contains(r)))
            .map(|(id, c)| (id.clone(), c.transport))
            .collect()
    }

    /// The transport of `conn`, when it is connected.
    pub fn transport_of(&self, conn: &ConnId) -> Option<Transport> {
        self.read().conns.get(conn).map(|c| c.transport)
    }

    /// The rooms `conn` is in.
    pub fn rooms_of(&self, conn: &ConnId) -> Vec<RoomName> {
        self.read()
            .conns
            .get(conn)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds `conn` to `room` (not live yet: see [`Membership::set_live`]): whether it was
    /// not a member yet, and the pod's interest. `None` when the connection is unknown.
    pub fn join(&self, conn: &ConnId, room: &RoomName) -> Option<(bool, Interest)> {
        let mut inner = self.lock();
        let entry = inner.conns.get_mut(conn)?;
        if !entry.rooms.insert(room.clone()) {
            return Some((false, Interest::Unchanged));
        }
        let member = Member {
            transport: entry.transport,
            mailbox: entry.mailbox.clone(),
            live: false,
        };
        let members = inner.rooms.entry(room.clone()).or_default();
        members.insert(conn.clone(), member);
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
        self.read().conns.len()
    }

    /// Every connection of the given transport.
    pub fn connections_of(&self, transport: Transport) -> Vec<ConnId> {
        self.read()
            .conns
            .iter()
            .filter(|(_, c)| c.transport == transport)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether `conn` is in `room`.
    pub fn is_member(&self, conn: &ConnId, room: &RoomName) -> bool {
        self.read()
            .conns
            .get(conn)
            .is_some_and(|c| c.rooms.contains(room))
    }

    /// Number of local members of `room`.
    pub fn room_size(&self, room: &RoomName) -> usize {
        self.read().rooms.get(room).map_or(0, HashMap::len)
    }

    /// Rooms with local members, with their member counts, sorted by name.
    pub fn rooms(&self) -> Vec<(RoomName, usize)> {
        let mut rooms: Vec<_> = self
            .read()
            .rooms
            .iter()
            .map(|(r, m)| (r.clone(), m.len()))
            .collect();
        rooms.sort();
        rooms
    }

    /// Every (room, connection) membership on this pod.
    pub fn room_connections(&self) -> Vec<(RoomName, ConnId)> {
        self.read()
            .rooms
            .iter()
            .flat_map(|(room, members)| members.keys().map(|conn| (room.clone(), conn.clone())))
            .collect()
    }

    /// Connection and room counts.
    pub fn counts(&self) -> MembershipCounts {
        let inner = self.read();
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
    rooms: &mut HashMap<RoomName, HashMap<ConnId, Member>>,
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
        m.connect(a.clone(), Transport::Ws, "ann", None);
        m.connect(b.clone(), Transport::SocketIo, "bob", None);
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
