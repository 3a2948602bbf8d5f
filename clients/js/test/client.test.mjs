// The typed calls and events against a real chatwire server (CHATWIRE_URL and friends,
// which tests/client_package.rs sets).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { ChatwireClient, ChatwireError, isChatwireError } from "../dist/index.js";
import {
  API_KEY,
  AUTH_URL,
  JWT_SECRET,
  LIMITED_URL,
  URL,
  URLS,
  collect,
  deadUrl,
  needs,
  nextEvent,
  open,
  room,
  serverApi,
  token,
} from "./helpers.mjs";

if (!URL) {
  console.warn("SKIPPED: the server tests need a chatwire server: set CHATWIRE_URL (see README.md, Tests)");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `assert.rejects` for a ChatwireError of `code`. */
async function rejectsWith(promise, code, event) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ChatwireError, `a ChatwireError, not ${err}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.name, "ChatwireError");
    assert.ok(err.message.length > 0);
    if (event !== undefined) assert.equal(err.event, event);
    return true;
  });
}

describe("typed calls", needs(URL, "CHATWIRE_URL"), () => {
  let alice;
  let bob;
  const clients = [];
  before(async () => {
    alice = await open();
    bob = await open();
    clients.push(alice, bob);
  });
  after(() => clients.forEach((c) => c.close()));

  /** A fresh room both Alice and Bob joined. */
  async function shared(prefix) {
    const r = room(prefix);
    await alice.join(r);
    await bob.join(r);
    return r;
  }

  test("join, then send: the ack has the stored offset, the other member gets the message", async () => {
    const r = room("send");
    assert.deepEqual(await alice.join(r), { room: r, recovered: true, missed: 0, since: 0 });
    await bob.join(r);
    assert.ok(alice.rooms.includes(r));
    const got = nextEvent(bob, "message:new", (m) => m.room === r);
    const ack = await alice.send(r, "hello");
    assert.equal(ack.offset, 1);
    assert.match(ack.id, UUID);
    assert.ok(!Number.isNaN(Date.parse(ack.timestamp)), ack.timestamp);
    assert.equal(ack.degraded, undefined);
    const [message, info] = await got;
    assert.equal(message.id, ack.id);
    assert.equal(message.offset, 1);
    assert.equal(message.type, "chat");
    assert.equal(message.data.content, "hello");
    assert.equal(message.from, alice.userId);
    assert.deepEqual(info, { recovered: false });
    assert.equal(alice.lastOffset(r), 1, "from its own ack");
    assert.equal(bob.lastOffset(r), 1, "from message:new");

    const back = nextEvent(alice, "message:new", (m) => m.room === r);
    assert.equal((await bob.send(r, "hi alice")).offset, 2);
    assert.equal((await back)[0].data.content, "hi alice");
    assert.equal(alice.lastOffset(r), 2);

    // A late joiner from offset 0 gets both through message:new, marked recovered.
    const carol = new ChatwireClient({ url: URL, transports: ["websocket"] });
    clients.push(carol);
    const recovered = collect(carol, "message:new", (m) => m.room === r);
    assert.deepEqual(await carol.join(r, { since: 0 }), { room: r, recovered: true, missed: 2, since: 0 });
    assert.deepEqual(
      recovered.map(([m, i]) => [m.offset, m.data.content, i.recovered]),
      [
        [1, "hello", true],
        [2, "hi alice", true],
      ],
    );
    // Without `since`, a join starts from the newest message.
    const dave = await open();
    clients.push(dave);
    assert.deepEqual(await dave.join(r), { room: r, recovered: true, missed: 0, since: 2 });
    assert.equal(dave.lastOffset(r), 2);
    // Joining again changes nothing.
    assert.deepEqual(await dave.join(r), { room: r, recovered: true, missed: 0, since: 2 });
    const live = nextEvent(dave, "message:new", (m) => m.room === r);
    await alice.send(r, "third");
    const [third, thirdInfo] = await live;
    assert.deepEqual([third.offset, thirdInfo.recovered], [3, false]);
  });

  test("a global message reaches every client, without a room", async () => {
    const got = nextEvent(bob, "message:new", (m) => m.room === undefined && m.data.content === "to everyone");
    const ack = await alice.send(null, "to everyone");
    assert.equal(typeof ack.offset, "number");
    const [message] = await got;
    assert.equal(message.id, ack.id);
  });

  test("history pages back, oldest first", async () => {
    const r = room("history");
    await alice.join(r);
    for (let i = 1; i <= 5; i++) assert.equal((await alice.send(r, `m${i}`)).offset, i);
    const newest = await bob.history(r, { limit: 2 });
    assert.deepEqual(
      newest.messages.map((m) => [m.offset, m.data.content]),
      [
        [4, "m4"],
        [5, "m5"],
      ],
    );
    assert.equal(newest.hasMore, true);
    const older = await bob.history(r, { before: 4 });
    assert.deepEqual(
      older.messages.map((m) => m.offset),
      [1, 2, 3],
    );
    assert.equal(older.hasMore, false);
    await rejectsWith(bob.history(r, { limit: 0 }), "INVALID_PAYLOAD", "message:history");
  });

  test("edit and delete: the room hears both; only the author may", async () => {
    const r = room("edit");
    await alice.join(r);
    await bob.join(r);
    const { id } = await alice.send(r, "typo");
    const updated = nextEvent(bob, "message:updated", (m) => m.id === id);
    assert.deepEqual(await alice.edit(r, id, "fixed"), { id });
    const [message] = await updated;
    assert.equal(message.data.content, "fixed");
    assert.equal(message.offset, 1);
    assert.ok(message.data.edited_at);
    await rejectsWith(bob.edit(r, id, "mine now"), "FORBIDDEN", "message:edit");
    await rejectsWith(bob.delete(r, id), "FORBIDDEN", "message:delete");

    const deleted = nextEvent(bob, "message:deleted", (d) => d.id === id);
    assert.deepEqual(await alice.delete(r, id), { id });
    assert.deepEqual((await deleted)[0], { room: r, id });
    const { messages } = await bob.history(r);
    assert.equal(messages[0].id, id);
    assert.equal(messages[0].data.deleted, true, "a tombstone");
    await rejectsWith(alice.delete(r, id), "INVALID_PAYLOAD", "message:delete");
  });

  test("presence: the list, status changes, and the roster the client keeps", async () => {
    const r = room("presence");
    await bob.join(r);
    const aliceOnline = nextEvent(bob, "presence:update", (p) => p.room === r && p.user.id === alice.userId);
    await alice.join(r);
    assert.equal((await aliceOnline)[0].status, "online");
    const roster = nextEvent(bob, "presence:roster", (e) => e.room === r);
    const users = await bob.presence(r);
    assert.deepEqual(
      users.map((u) => [u.id, u.status]).sort(),
      [
        [alice.userId, "online"],
        [bob.userId, "online"],
      ].sort(),
    );
    assert.deepEqual((await roster)[0].users, users);

    const away = nextEvent(bob, "presence:update", (p) => p.room === r && p.user.id === alice.userId);
    await alice.setStatus("away");
    assert.equal((await away)[0].status, "away");
    assert.equal(bob.online(r).find((u) => u.id === alice.userId)?.status, "away");
    assert.equal(alice.online(r), undefined, "no roster until presence(room)");
    await alice.setStatus("online");
    await rejectsWith(alice.setStatus("offline"), "INVALID_PAYLOAD", "presence:update");
  });

  test("typing: events, who is typing, and the indicator helper", async () => {
    const r = room("typing");
    await alice.join(r);
    await bob.join(r);
    const started = nextEvent(bob, "user:typing", (t) => t.room === r);
    const changed = nextEvent(bob, "typing:change", (c) => c.room === r);
    await alice.typing(r, true);
    assert.deepEqual((await started)[0], { room: r, user: { id: alice.userId, name: alice.userId }, typing: true });
    assert.deepEqual((await changed)[0].users.map((u) => u.id), [alice.userId]);
    assert.deepEqual(bob.typingUsers(r).map((u) => u.id), [alice.userId]);
    // Their message ends it (the server sends no typing:false then).
    const ended = nextEvent(bob, "typing:change", (c) => c.room === r);
    await alice.send(r, "done typing");
    assert.deepEqual((await ended)[0].users, []);

    const indicator = alice.typingIndicator(r, { idleMs: 100 });
    assert.equal(alice.typingIndicator(r), indicator, "one per room");
    const seen = collect(bob, "user:typing", (t) => t.room === r);
    const on = nextEvent(bob, "user:typing", (t) => t.room === r && t.typing);
    const off = nextEvent(bob, "user:typing", (t) => t.room === r && !t.typing);
    indicator.keystroke();
    indicator.keystroke(); // within refreshMs: no second event
    await on;
    assert.equal(indicator.typing, true);
    await off; // idle for 100 ms
    assert.equal(indicator.typing, false);
    assert.deepEqual(
      seen.map(([t]) => t.typing),
      [true, false],
    );
    await rejectsWith(alice.typing(room("nowhere"), true), "CHANNEL_ERROR", "user:typing");
  });

  test("errors are ChatwireErrors with the server's code", async () => {
    const r = room("errors");
    await rejectsWith(alice.send(r, "not a member"), "CHANNEL_ERROR", "message:send");
    await alice.join(r);
    await rejectsWith(alice.send(r, ""), "INVALID_PAYLOAD", "message:send");
    // Over MAX_MESSAGE_BYTES (64 KiB) but within the packet limit (64 KiB + 4 KiB).
    await rejectsWith(alice.send(r, "x".repeat(66_000)), "MESSAGE_TOO_LARGE", "message:send");
    await rejectsWith(alice.join("not a room!"), "INVALID_PAYLOAD");
    await rejectsWith(alice.join("user:somebody-else"), "FORBIDDEN");
    await rejectsWith(alice.rpc("orders.list", { page: 1 }), "INVALID_PAYLOAD", "rpc:orders.list");
    const err = await alice.send(room("elsewhere"), "x").catch((e) => e);
    assert.ok(isChatwireError(err, "CHANNEL_ERROR"));
    assert.equal(err.retryable, false);
    assert.equal(err.retryAfterMs, undefined);
    // The connection stays usable.
    assert.equal((await alice.send(r, "still here")).offset, 1);
    assert.deepEqual(alice.rooms.filter((x) => x === "not a room!" || x.startsWith("user:")), []);
  });

  test("leave: no longer a member, no longer rejoined", async () => {
    const r = room("leave");
    await alice.join(r);
    await alice.send(r, "bye");
    assert.deepEqual(await alice.leave(r), { room: r });
    assert.ok(!alice.rooms.includes(r));
    assert.equal(alice.lastOffset(r), undefined);
    await rejectsWith(alice.send(r, "gone"), "CHANNEL_ERROR", "message:send");
  });

  test("a display name: messages, presence and typing carry it, marked unverified", async () => {
    const r = room("named");
    const ada = await open({ name: "Ada" });
    clients.push(ada);
    await bob.join(r);
    const online = nextEvent(bob, "presence:update", (p) => p.room === r && p.user.id === ada.userId);
    await ada.join(r);
    assert.equal((await online)[0].user.name, "Ada");
    const typing = nextEvent(bob, "user:typing", (t) => t.room === r);
    await ada.typing(r, true);
    assert.equal((await typing)[0].user.name, "Ada");
    const got = nextEvent(bob, "message:new", (m) => m.room === r);
    await ada.send(r, "hi, I am Ada");
    const [message] = await got;
    assert.equal(message.from, ada.userId);
    assert.deepEqual(message.user, { id: ada.userId, name: "Ada", unverified: true });
    const { messages } = await bob.history(r);
    assert.deepEqual(messages.at(-1).user, message.user, "history keeps it");
    assert.deepEqual(
      (await bob.presence(r)).find((u) => u.id === ada.userId),
      { id: ada.userId, name: "Ada", status: "online" },
    );
    // An empty name refuses the connection.
    const nameless = new ChatwireClient({ url: URL, transports: ["websocket"], name: "", reconnection: false });
    clients.push(nameless);
    await rejectsWith(nameless.ready(), "INVALID_PAYLOAD");
  });

  test("read receipts and unread counts", async () => {
    const r = await shared("read");
    for (const text of ["one", "two", "three"]) await alice.send(r, text);
    assert.deepEqual(await bob.unread(r), { room: r, readOffset: 0, unread: 3, lastOffset: 3 });
    assert.deepEqual(await alice.unread(r), { room: r, readOffset: 0, unread: 0, lastOffset: 3 }, "own messages");
    const receipt = nextEvent(alice, "receipt:update", (e) => e.room === r);
    assert.deepEqual(await bob.markRead(r, 2), { room: r, readOffset: 2 });
    const [seen] = await receipt;
    assert.deepEqual(seen.receipts.map((r) => [r.user.id, r.offset]), [[bob.userId, 2]]);
    assert.deepEqual(await bob.unread(r), { room: r, readOffset: 2, unread: 1, lastOffset: 3 });
    assert.deepEqual(await bob.markRead(r, 1), { room: r, readOffset: 2 }, "never moves back");
    assert.deepEqual(await bob.markRead(r, 99), { room: r, readOffset: 3 }, "clamped to the newest");
    const rooms = await bob.unread();
    assert.ok(Array.isArray(rooms));
    assert.deepEqual(rooms.find((u) => u.room === r), { room: r, readOffset: 3, unread: 0, lastOffset: 3 });
    await rejectsWith(bob.markRead(room("elsewhere"), 1), "CHANNEL_ERROR", "message:read");
  });

  test("reactions: counts in the ack, the event and history", async () => {
    const r = await shared("react");
    const { id } = await alice.send(r, "react to me");
    const heard = nextEvent(alice, "message:reactions", (e) => e.id === id);
    assert.deepEqual(await bob.react(r, id, "👍"), { id, reactions: { "👍": 1 } });
    const [event] = await heard;
    assert.deepEqual(
      [event.room, event.emoji, event.add, event.user.id, event.reactions],
      [r, "👍", true, bob.userId, { "👍": 1 }],
    );
    assert.deepEqual(await bob.react(r, id, "👍"), { id, reactions: { "👍": 1 } }, "a repeat changes nothing");
    assert.deepEqual(await alice.react(r, id, "👍"), { id, reactions: { "👍": 2 } });
    assert.deepEqual(await alice.react(r, id, "❤️"), { id, reactions: { "👍": 2, "❤️": 1 } });
    assert.deepEqual((await bob.history(r)).messages[0].reactions, { "👍": 2, "❤️": 1 });
    assert.deepEqual(await bob.react(r, id, "👍", false), { id, reactions: { "👍": 1, "❤️": 1 } });
    await rejectsWith(bob.react(r, id, "two words"), "INVALID_PAYLOAD", "message:react");
  });

  test("threads: replies reach those who opened the thread, once each; the room hears thread:updated", async () => {
    const r = await shared("thread");
    const root = await alice.send(r, "a root");
    const thread = `thread:${root.id}`;
    assert.deepEqual(await bob.openThread(r, root.id), { thread, replyCount: 0 });
    assert.deepEqual(bob.threads, [{ room: r, id: root.id }]);
    const replies = collect(bob, "message:new", (m) => m.room === thread);
    const updated = nextEvent(bob, "thread:updated", (e) => e.id === root.id);
    const first = await alice.reply(r, root.id, "first reply");
    assert.equal(first.offset, 1, "its place in the thread");
    assert.equal(alice.lastOffset(r), 1, "the root's room is not moved by a reply");
    const [summary] = await updated;
    assert.deepEqual([summary.room, summary.reply_count], [r, 1]);
    assert.ok(summary.last_reply_at);
    // Alice opened the thread by replying: Bob's reply reaches her.
    const back = nextEvent(alice, "message:new", (m) => m.room === thread);
    const marker = nextEvent(bob, "message:new", (m) => m.room === thread && m.data.content === "a marker");
    await bob.reply(r, root.id, "second reply");
    const [second] = await back;
    assert.deepEqual([second.data.content, second.offset, second.thread], ["second reply", 2, { id: root.id, room: r }]);
    await alice.reply(r, root.id, "a marker");
    await marker;
    assert.deepEqual(
      replies.map(([m]) => [m.data.content, m.offset, m.thread]),
      [
        ["first reply", 1, { id: root.id, room: r }],
        ["a marker", 3, { id: root.id, room: r }],
      ],
      "each reply once, none of Bob's own",
    );
    const page = await bob.threadHistory(r, root.id, { limit: 2 });
    assert.deepEqual(page.messages.map((m) => m.data.content), ["second reply", "a marker"]);
    assert.equal(page.hasMore, true);
    const older = await bob.threadHistory(r, root.id, { before: 2 });
    assert.deepEqual(older.messages.map((m) => m.data.content), ["first reply"]);
    const [rootInHistory] = (await bob.history(r)).messages;
    assert.deepEqual([rootInHistory.id, rootInHistory.reply_count], [root.id, 3]);
    assert.ok(rootInHistory.last_reply_at);
    const info = await bob.openThread(r, root.id);
    assert.equal(info.replyCount, 3);
    assert.ok(info.lastReplyAt);

    // A new connection opens the thread again.
    const rejoined = nextEvent(bob, "rejoined", (i) => i.room === r);
    bob.close();
    bob.connect();
    await rejoined;
    await bob.presence(r); // answered after the thread:open sent with the rejoin
    const again = nextEvent(bob, "message:new", (m) => m.room === thread);
    await alice.reply(r, root.id, "after the reconnect");
    assert.equal((await again)[0].data.content, "after the reconnect");

    // Closed: no more replies; the root's room still hears the summary.
    assert.deepEqual(await bob.closeThread(r, root.id), { thread });
    assert.deepEqual(bob.threads, []);
    const count = replies.length;
    const after = nextEvent(bob, "message:new", (m) => m.room === r && m.data.content === "after closing");
    const summed = nextEvent(bob, "thread:updated", (e) => e.id === root.id && e.reply_count === 5);
    await alice.reply(r, root.id, "while closed");
    await alice.send(r, "after closing");
    await Promise.all([after, summed]);
    assert.equal(replies.length, count, "no reply after closeThread");
    await rejectsWith(bob.openThread(room("elsewhere"), root.id), "CHANNEL_ERROR", "thread:open");
  });

  test("search: every word, newest first, paged", async () => {
    const r = room("search");
    await alice.join(r);
    await alice.send(r, "the quick brown fox");
    await alice.send(r, "a lazy dog");
    await alice.send(r, "QUICK as a fox");
    const found = await alice.search("quick fox", { room: r });
    assert.deepEqual(found.messages.map((m) => m.data.content), ["QUICK as a fox", "the quick brown fox"]);
    assert.equal(found.hasMore, false);
    const first = await alice.search("quick fox", { room: r, limit: 1 });
    assert.deepEqual([first.messages.length, first.hasMore], [1, true]);
    const next = await alice.search("quick fox", { room: r, before: first.messages[0].id });
    assert.deepEqual(next.messages.map((m) => m.data.content), ["the quick brown fox"]);
    const everywhere = await alice.search("lazy dog");
    assert.ok(everywhere.messages.some((m) => m.room === r && m.data.content === "a lazy dog"));
    await rejectsWith(alice.search(""), "INVALID_PAYLOAD", "message:search");
  });

  test("close: calls reject with CLOSED; connect() comes back", async () => {
    const r = room("close");
    const client = await open();
    clients.push(client);
    await client.join(r);
    const gone = nextEvent(client, "disconnect");
    client.close();
    assert.deepEqual((await gone)[0].willReconnect, false);
    assert.equal(client.connected, false);
    await rejectsWith(client.send(r, "x"), "CLOSED");
    const rejoined = nextEvent(client, "rejoined", (i) => i.room === r);
    client.connect();
    assert.deepEqual((await rejoined)[0], { room: r, recovered: true, since: 0, missed: 0, url: URL });
    assert.equal((await client.send(r, "back")).offset, 1);
  });
});

describe("connections", needs(URL, "CHATWIRE_URL"), () => {
  test("a list of URLs: one that does not answer is skipped", async () => {
    const dead = await deadUrl();
    const client = new ChatwireClient({ urls: [dead, URL], transports: ["websocket"] });
    try {
      const [failed] = await nextEvent(client, "connect_error");
      assert.equal(failed.url, dead);
      assert.equal(failed.willRetry, true);
      assert.equal(failed.error.code, "CONNECT_FAILED");
      const [connected] = await nextEvent(client, "connect");
      assert.equal(connected.url, URL);
      assert.equal(connected.id, client.id);
      await client.ready();
      assert.equal(client.url, URL);
    } finally {
      client.close();
    }
  });

  test("RATE_LIMITED carries retryAfterMs", needs(LIMITED_URL, "CHATWIRE_LIMITED_URL"), async () => {
    const client = await open({ url: LIMITED_URL });
    try {
      const r = room("limited");
      await client.join(r);
      await client.send(r, "one a minute");
      const err = await client.send(r, "and another").catch((e) => e);
      assert.ok(isChatwireError(err, "RATE_LIMITED"), String(err));
      assert.ok(err.retryAfterMs > 0, `retryAfterMs ${err.retryAfterMs}`);
      assert.equal(err.retryable, true);
    } finally {
      client.close();
    }
  });

  test("AUTH_FAILED refuses the connection without retrying; a token names the user", needs(AUTH_URL, "CHATWIRE_AUTH_URL"), async () => {
    const anonymous = new ChatwireClient({ url: AUTH_URL, transports: ["websocket"] });
    try {
      const refused = nextEvent(anonymous, "connect_error");
      await rejectsWith(anonymous.join(room("closed")), "AUTH_FAILED");
      const [info] = await refused;
      assert.equal(info.error.code, "AUTH_FAILED");
      assert.equal(info.willRetry, false);
    } finally {
      anonymous.close();
    }
    const sub = `ann-${Math.random().toString(36).slice(2, 8)}`;
    let asked = 0;
    const client = await open({
      url: AUTH_URL,
      token: () => {
        asked += 1;
        return token(JWT_SECRET, sub, "Ann Example");
      },
      name: "Not Ann", // sent beside the token, whose name wins
    });
    try {
      assert.equal(asked, 1);
      assert.equal(client.userId, sub);
      const r = room("authed");
      await client.join(r);
      assert.deepEqual(await client.presence(r), [{ id: sub, name: "Ann Example", status: "online" }]);
      const ack = await client.send(r, "signed");
      const { messages } = await client.history(r);
      assert.deepEqual([messages[0].id, messages[0].from], [ack.id, sub]);
    } finally {
      client.close();
    }
  });

  test("pods: one chat across the URLs", needs(URLS?.length >= 2, "CHATWIRE_URLS"), async () => {
    const a = await open({ url: URLS[0] });
    const b = await open({ url: URLS[1] });
    try {
      const r = room("pods");
      await a.join(r);
      await b.join(r);
      const got = nextEvent(b, "message:new", (m) => m.room === r);
      const ack = await a.send(r, "across");
      assert.equal((await got)[0].id, ack.id);
      const users = await b.presence(r);
      assert.deepEqual(users.map((u) => u.id).sort(), [a.userId, b.userId].sort());
    } finally {
      a.close();
      b.close();
    }
  });
});

describe("the backend's events", needs(AUTH_URL && API_KEY, "CHATWIRE_AUTH_URL and CHATWIRE_API_KEY"), () => {
  test("publish, room:removed and session:ended", async () => {
    const id = Math.random().toString(36).slice(2, 8);
    const [ann, ben] = [`ann-${id}`, `ben-${id}`];
    const a = await open({ url: AUTH_URL, token: token(JWT_SECRET, ann, "Ann") });
    const b = await open({ url: AUTH_URL, token: token(JWT_SECRET, ben, "Ben") });
    try {
      const r = room("backend");
      await a.join(r);
      await b.join(r);
      assert.equal((await a.send(r, "from ann")).offset, 1);

      // A message the backend publishes is one of the room's, in its order.
      const published = nextEvent(b, "message:new", (m) => m.room === r && m.from === "server");
      const ack = await serverApi("/publish", { room: r, content: "maintenance at 22:00" });
      const [notice] = await published;
      assert.deepEqual([notice.id, notice.type, notice.offset], [ack.id, "notification", 2]);
      assert.equal(b.lastOffset(r), 2);

      // Kicked: both hear it; ann's client stops rejoining the room.
      const heard = nextEvent(b, "room:removed", (e) => e.room === r);
      const removed = nextEvent(a, "room:removed", (e) => e.room === r);
      await serverApi(`/rooms/${r}/kick`, { user: ann, reason: "spam" });
      assert.deepEqual((await removed)[0], { room: r, user: ann, reason: "spam" });
      assert.deepEqual((await heard)[0], { room: r, user: ann, reason: "spam" });
      assert.ok(!a.rooms.includes(r), "no longer rejoined");
      assert.ok(b.rooms.includes(r), "ben stays");
      await rejectsWith(a.send(r, "still here?"), "CHANNEL_ERROR", "message:send");

      // Disconnected by the backend: told why, and not reconnected.
      const ended = nextEvent(a, "session:ended");
      const gone = nextEvent(a, "disconnect");
      await serverApi(`/users/${ann}/disconnect`, { reason: "banned" });
      assert.deepEqual((await ended)[0], { reason: "banned" });
      assert.deepEqual((await gone)[0], { url: AUTH_URL, reason: "io server disconnect", willReconnect: false });
      await rejectsWith(a.send(null, "hello?"), "DISCONNECTED");
    } finally {
      a.close();
      b.close();
    }
  });
});
