//! Presence in Redis, across pods.
//!
//! - `pod:{pod}`: a pod's liveness, set before any of its entries and renewed every
//!   heartbeat, expiring after PRESENCE_TTL: entries of pods whose key is gone belong to
//!   dead pods.
//! - `presence:{room}`: a hash of user id to `{"u": user, "s": status, "p": {pod: 1}}`,
//!   the pods that have the user in the room; renewed by every heartbeat of a pod with
//!   members there, expiring 4 x PRESENCE_TTL after the last.
//! - `chatwire:room-counts`: a hash of `{pod}|{room}` to that pod's member count.
//! - For operators, as Streamly's chat service keeps them: `rooms:active`, the set of
//!   rooms with a connection on a live pod, and `connections:{room}`, the set of its
//!   connection ids; `chatwire:connections-of:{pod}` (`{room} {conn}` entries) and
//!   `chatwire:connection-pods` let a live pod remove a dead pod's connections.
//!
//! Every change of a user's record is one Lua script, so decisions ("first pod to have
//! them", "last pod to lose them") are atomic across pods.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::{AsyncCommands, Script};
use serde::Deserialize;

use crate::chat::{
    ConnectionChange, PresenceChanges, PresenceState, PresenceStore, RoomName, Status, StoreError,
    UserRef,
};
use crate::redis::RedisLink;

const ROOMS_KEY: &str = "chatwire:room-counts";

/// Makes `rooms:active` a set (earlier versions kept room counts there as a hash), then
/// defines the helpers the connection scripts share.
const CONNECTIONS_PRELUDE: &str = r#"
local kind = redis.call('TYPE', 'rooms:active')['ok']
if kind ~= 'set' and kind ~= 'none' then redis.call('DEL', 'rooms:active') end
local function gone(room, conn)
  redis.call('SREM', 'connections:' .. room, conn)
  if redis.call('SCARD', 'connections:' .. room) == 0 then
    redis.call('SREM', 'rooms:active', room)
  end
end
local function came(mine, room, conn)
  redis.call('SADD', 'connections:' .. room, conn)
  redis.call('SADD', 'rooms:active', room)
  redis.call('SADD', mine, room .. ' ' .. conn)
end
local function split(entry)
  local sp = string.find(entry, ' ', 1, true)
  if not sp then return nil end
  return string.sub(entry, 1, sp - 1), string.sub(entry, sp + 1)
end
"#;

/// Applies joins and leaves of this pod's connections in order, after renewing its
/// liveness; returns 0 when that liveness had lapsed (its records may have been reaped).
/// ARGV pod, liveness ms, then (`j` or `l`, room, conn) triples.
const CONNECTIONS: &str = r#"
local pod = ARGV[1]
local alive = redis.call('EXISTS', 'pod:' .. pod)
redis.call('SET', 'pod:' .. pod, 1, 'PX', ARGV[2])
redis.call('SADD', 'chatwire:connection-pods', pod)
local mine = 'chatwire:connections-of:' .. pod
for i = 3, #ARGV, 3 do
  local room, conn = ARGV[i + 1], ARGV[i + 2]
  if ARGV[i] == 'j' then
    came(mine, room, conn)
  else
    gone(room, conn)
    redis.call('SREM', mine, room .. ' ' .. conn)
  end
end
return alive
"#;

/// Replaces this pod's connection records with the given ones. ARGV pod, liveness ms,
/// then (room, conn) pairs.
const RESET_CONNECTIONS: &str = r#"
local pod = ARGV[1]
redis.call('SET', 'pod:' .. pod, 1, 'PX', ARGV[2])
redis.call('SADD', 'chatwire:connection-pods', pod)
local mine = 'chatwire:connections-of:' .. pod
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i] .. ' ' .. ARGV[i + 1]] = true end
for _, entry in ipairs(redis.call('SMEMBERS', mine)) do
  if not want[entry] then
    local room, conn = split(entry)
    if room then gone(room, conn) end
    redis.call('SREM', mine, entry)
  end
end
for i = 3, #ARGV, 2 do came(mine, ARGV[i], ARGV[i + 1]) end
return 1
"#;

/// Removes the connection records of pods whose liveness key is gone.
const REAP_CONNECTIONS: &str = r#"
for _, pod in ipairs(redis.call('SMEMBERS', 'chatwire:connection-pods')) do
  if redis.call('EXISTS', 'pod:' .. pod) == 0 then
    local theirs = 'chatwire:connections-of:' .. pod
    for _, entry in ipairs(redis.call('SMEMBERS', theirs)) do
      local room, conn = split(entry)
      if room then gone(room, conn) end
    end
    redis.call('DEL', theirs)
    redis.call('SREM', 'chatwire:connection-pods', pod)
  end
end
return 0
"#;

/// Changes written in one script call, at most.
const CONNECTION_BATCH: usize = 1000;

/// Adds this pod to a user's record, after renewing its liveness. Returns 1 when no live
/// pod had the user, 2 when this pod already had them, 0 otherwise.
/// KEYS[1] presence key; ARGV pod, user id, user JSON, status, liveness ms, record ms.
const ONLINE: &str = r#"
local pod = ARGV[1]
redis.call('SET', 'pod:' .. pod, 1, 'PX', ARGV[5])
local pods = {}
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if raw then
  local ok, r = pcall(cjson.decode, raw)
  if ok and type(r) == 'table' and type(r.p) == 'table' then pods = r.p end
end
local had = pods[pod] ~= nil
local others = false
for p, _ in pairs(pods) do
  if p ~= pod then
    if redis.call('EXISTS', 'pod:' .. p) == 1 then others = true else pods[p] = nil end
  end
end
pods[pod] = 1
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode({u = cjson.decode(ARGV[3]), s = ARGV[4], p = pods}))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if had then return 2 end
if others then return 0 end
return 1
"#;

/// Removes this pod (and dead pods) from a user's record. Returns 1 when no live pod has
/// the user any more (the record is gone), 0 otherwise.
/// KEYS[1] presence key; ARGV pod, user id.
const OFFLINE: &str = r#"
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 1 end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' or type(r.p) ~= 'table' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 1
end
r.p[ARGV[1]] = nil
for p, _ in pairs(r.p) do
  if redis.call('EXISTS', 'pod:' .. p) == 0 then r.p[p] = nil end
end
if next(r.p) == nil then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(r))
return 0
"#;

/// The records of users with at least one live pod. KEYS[1] presence key.
const LIST: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local ok, r = pcall(cjson.decode, all[i + 1])
  if ok and type(r) == 'table' and type(r.p) == 'table' then
    for p, _ in pairs(r.p) do
      if alive[p] == nil then alive[p] = redis.call('EXISTS', 'pod:' .. p) == 1 end
      if alive[p] then
        table.insert(out, all[i + 1])
        break
      end
    end
  end
end
return out
"#;

/// Removes dead pods from every record of a room; returns the records left with no pod
/// (removed: those users are offline everywhere). KEYS[1] presence key.
const REAP: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local gone = {}
for i = 1, #all, 2 do
  local ok, r = pcall(cjson.decode, all[i + 1])
  if ok and type(r) == 'table' and type(r.p) == 'table' then
    local changed = false
    for p, _ in pairs(r.p) do
      if alive[p] == nil then alive[p] = redis.call('EXISTS', 'pod:' .. p) == 1 end
      if not alive[p] then
        r.p[p] = nil
        changed = true
      end
    end
    if next(r.p) == nil then
      redis.call('HDEL', KEYS[1], all[i])
      table.insert(gone, all[i + 1])
    elseif changed then
      redis.call('HSET', KEYS[1], all[i], cjson.encode(r))
    end
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return gone
"#;

/// A user's record as the scripts store it.
#[derive(Deserialize)]
struct Record {
    u: UserRef,
    s: Status,
}

fn decode(raw: &str) -> Option<(UserRef, Status)> {
    serde_json::from_str::<Record>(raw).ok().map(|r| (r.u, r.s))
}

fn presence_key(room: &RoomName) -> String {
    format!("presence:{room}")
}

fn pod_key(pod: &str) -> String {
    format!("pod:{pod}")
}

/// Presence and active rooms in Redis, with per-pod liveness keys.
pub struct RedisPresence {
    link: RedisLink,
    pod: String,
    ttl: Duration,
    online: Script,
    offline: Script,
    list: Script,
    reap: Script,
    connections: String,
    reset_connections: String,
    reap_connections: String,
}

impl RedisPresence {
    /// Presence for pod `pod`, whose records die `ttl` after its last heartbeat.
    pub fn new(link: RedisLink, pod: String, ttl: Duration) -> Self {
        Self {
            link,
            pod,
            ttl,
            online: Script::new(ONLINE),
            offline: Script::new(OFFLINE),
            list: Script::new(LIST),
            reap: Script::new(REAP),
            connections: format!("{CONNECTIONS_PRELUDE}{CONNECTIONS}"),
            reset_connections: format!("{CONNECTIONS_PRELUDE}{RESET_CONNECTIONS}"),
            reap_connections: format!("{CONNECTIONS_PRELUDE}{REAP_CONNECTIONS}"),
        }
    }

    /// Adds an EVALSHA of `script` (loaded by [`RedisPresence::run_scripts`]) with `args`.
    fn push_script<'p>(
        pipe: &'p mut redis::Pipeline,
        script: &str,
        args: &[&str],
    ) -> &'p mut redis::Pipeline {
        let cmd = pipe
            .cmd("EVALSHA")
            .arg(Script::new(script).get_hash())
            .arg(0);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }

    fn liveness_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    fn record_ms(&self) -> u64 {
        self.liveness_ms() * 4
    }

    /// Adds an ONLINE call for `user` to `pipe`.
    fn push_online(
        &self,
        pipe: &mut redis::Pipeline,
        room: &RoomName,
        user: &UserRef,
        status: Status,
    ) {
        let user_json = serde_json::to_string(user).unwrap_or_default();
        let status = serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        pipe.cmd("EVALSHA")
            .arg(self.online.get_hash())
            .arg(1)
            .arg(presence_key(room))
            .arg(&self.pod)
            .arg(&user.id)
            .arg(user_json)
            .arg(status)
            .arg(self.liveness_ms())
            .arg(self.record_ms());
    }

    /// Runs `pipe` after loading `scripts` in the same pipeline (EVALSHA then finds them
    /// even on a Redis that just restarted).
    async fn run_scripts<T: redis::FromRedisValue + Send + 'static>(
        &self,
        scripts: &[&str],
        calls: redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut pipe = redis::pipe();
        for script in scripts {
            pipe.cmd("SCRIPT").arg("LOAD").arg(*script).ignore();
        }
        for cmd in calls.cmd_iter() {
            pipe.add_command(cmd.clone());
        }
        Ok(self
            .link
            .with_conn(|mut c| async move { pipe.query_async::<T>(&mut c).await })
            .await?)
    }
}

impl PresenceStore for RedisPresence {
    fn online<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a UserRef,
        status: Status,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut calls = redis::pipe();
            self.push_online(&mut calls, room, user, status);
            let (answer,): (u8,) = self.run_scripts(&[ONLINE], calls).await?;
            Ok(answer == 1)
        })
    }

    fn offline<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let (key, pod, user) = (presence_key(room), self.pod.clone(), user.to_owned());
            let script = self.offline.clone();
            let last: u8 = self
                .link
                .with_conn(|mut c| async move {
                    script
                        .key(key)
                        .arg(pod)
                        .arg(user)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(last == 1)
        })
    }

    fn list<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Vec<(UserRef, Status)>, StoreError>> {
        Box::pin(async move {
            let key = presence_key(room);
            let script = self.list.clone();
            let raw: Vec<String> = self
                .link
                .with_conn(|mut c| async move { script.key(key).invoke_async(&mut c).await })
                .await?;
            let mut users: BTreeMap<String, (UserRef, Status)> = BTreeMap::new();
            for (user, status) in raw.iter().filter_map(|r| decode(r)) {
                users.entry(user.id.clone()).or_insert((user, status));
            }
            Ok(users.into_values().collect())
        })
    }

    fn sync<'a>(
        &'a self,
        state: &'a PresenceState,
    ) -> BoxFuture<'a, Result<PresenceChanges, StoreError>> {
        Box::pin(async move {
            // 1. Liveness first, then this pod's entries (renewed, or written again),
            //    the departures the store missed, and dead pods' entries in these rooms.
            let mut calls = redis::pipe();
            calls
                .cmd("SET")
                .arg(pod_key(&self.pod))
                .arg(1)
                .arg("PX")
                .arg(self.liveness_ms())
                .ignore();
            for (room, user, status) in &state.online {
                self.push_online(&mut calls, room, user, *status);
            }
            for (room, user) in &state.departed {
                calls
                    .cmd("EVALSHA")
                    .arg(self.offline.get_hash())
                    .arg(1)
                    .arg(presence_key(room))
                    .arg(&self.pod)
                    .arg(&user.id);
            }
            for (room, _) in &state.rooms {
                calls
                    .cmd("EVALSHA")
                    .arg(self.reap.get_hash())
                    .arg(1)
                    .arg(presence_key(room));
            }
            // Its reply is ignored.
            Self::push_script(&mut calls, &self.reap_connections, &[]).ignore();
            let scripts = [ONLINE, OFFLINE, REAP, self.reap_connections.as_str()];
            let replies: Vec<redis::Value> = self.run_scripts(&scripts, calls).await?;
            let mut replies = replies.into_iter();
            let mut changes = PresenceChanges::default();
            for ((room, user, _), reply) in state.online.iter().zip(replies.by_ref()) {
                if redis::from_redis_value::<u8>(reply).is_ok_and(|a| a == 1) {
                    changes.online.push((room.clone(), user.clone()));
                }
            }
            for ((room, user), reply) in state.departed.iter().zip(replies.by_ref()) {
                if redis::from_redis_value::<u8>(reply).is_ok_and(|a| a == 1) {
                    changes.offline.push((room.clone(), user.clone()));
                }
            }
            for ((room, _), reply) in state.rooms.iter().zip(replies.by_ref()) {
                let gone: Vec<String> = redis::from_redis_value(reply).unwrap_or_default();
                for (user, _) in gone.iter().filter_map(|r| decode(r)) {
                    changes.offline.push((room.clone(), user));
                }
            }
            self.sync_room_counts(&state.rooms).await?;
            Ok(changes)
        })
    }

    fn connections_changed<'a>(
        &'a self,
        changes: &'a [ConnectionChange],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let liveness = self.liveness_ms().to_string();
            let mut calls = redis::pipe();
            // Runs of joins and leaves go in batches; a replacement on its own, in order.
            let mut batch: Vec<&str> = Vec::new();
            let flush = |calls: &mut redis::Pipeline, batch: &mut Vec<&str>| {
                if !batch.is_empty() {
                    let mut args: Vec<&str> = vec![self.pod.as_str(), liveness.as_str()];
                    args.extend(batch.iter().copied());
                    batch.clear();
                    Self::push_script(calls, &self.connections, &args);
                }
            };
            for change in changes {
                match change {
                    ConnectionChange::Joined(room, conn) => {
                        batch.extend(["j", room.as_str(), conn.as_str()]);
                    }
                    ConnectionChange::Left(room, conn) => {
                        batch.extend(["l", room.as_str(), conn.as_str()]);
                    }
                    ConnectionChange::Replace(all) => {
                        flush(&mut calls, &mut batch);
                        let mut args = vec![self.pod.as_str(), liveness.as_str()];
                        for (room, conn) in all {
                            args.extend([room.as_str(), conn.as_str()]);
                        }
                        Self::push_script(&mut calls, &self.reset_connections, &args);
                    }
                }
                if batch.len() >= 3 * CONNECTION_BATCH {
                    flush(&mut calls, &mut batch);
                }
            }
            flush(&mut calls, &mut batch);
            let scripts = [self.connections.as_str(), self.reset_connections.as_str()];
            let alive: Vec<i64> = self.run_scripts(&scripts, calls).await?;
            Ok(alive.contains(&0))
        })
    }

    fn rooms<'a>(
        &'a self,
        local: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        Box::pin(async move {
            let entries: HashMap<String, String> = self
                .link
                .with_conn(|mut c| async move { c.hgetall(ROOMS_KEY).await })
                .await?;
            let alive = self.alive(&entries).await?;
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for (field, n) in &entries {
                let Some((pod, room)) = field.split_once('|') else {
                    continue;
                };
                if pod != self.pod && alive.contains(pod) {
                    *counts.entry(room.to_owned()).or_default() += n.parse::<u64>().unwrap_or(0);
                }
            }
            for (room, n) in local {
                *counts.entry(room.to_string()).or_default() += *n as u64;
            }
            Ok(counts.into_iter().collect())
        })
    }
}

impl RedisPresence {
    /// The live pods among those named by `{pod}|...` fields of `entries`.
    async fn alive(
        &self,
        entries: &HashMap<String, String>,
    ) -> Result<HashSet<String>, StoreError> {
        let mut pods: Vec<String> = entries
            .keys()
            .filter_map(|f| f.split_once('|'))
            .map(|(p, _)| p.to_owned())
            .collect();
        pods.sort();
        pods.dedup();
        if pods.is_empty() {
            return Ok(HashSet::new());
        }
        let keys: Vec<String> = pods.iter().map(|p| pod_key(p)).collect();
        let found: Vec<Option<String>> = self
            .link
            .with_conn(
                |mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await },
            )
            .await?;
        Ok(pods
            .into_iter()
            .zip(found)
            .filter(|(_, v)| v.is_some())
            .map(|(p, _)| p)
            .collect())
    }

    /// Records this pod's room counts and forgets those of dead pods.
    async fn sync_room_counts(&self, rooms: &[(RoomName, usize)]) -> Result<(), StoreError> {
        let prefix = format!("{}|", self.pod);
        let current: HashMap<String, String> = self
            .link
            .with_conn(|mut c| async move { c.hgetall(ROOMS_KEY).await })
            .await?;
        let alive = self.alive(&current).await?;
        let stale: Vec<&String> = current
            .keys()
            .filter(|f| match f.strip_prefix(&prefix) {
                Some(room) => !rooms.iter().any(|(r, _)| r.as_str() == room),
                None => f.split_once('|').is_some_and(|(p, _)| !alive.contains(p)),
            })
            .collect();
        let mut pipe = redis::pipe();
        if !stale.is_empty() {
            pipe.hdel(ROOMS_KEY, stale).ignore();
        }
        for (room, n) in rooms {
            pipe.hset(ROOMS_KEY, format!("{prefix}{room}"), *n as u64)
                .ignore();
        }
        if pipe.cmd_iter().next().is_none() {
            return Ok(());
        }
        self.link
            .with_conn(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await?;
        Ok(())
    }
}
