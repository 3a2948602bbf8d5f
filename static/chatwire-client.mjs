// @chatwire/client for browsers: generated from clients/js/src by `npm run build:browser`
// (clients/js/scripts/build-browser.mjs); do not edit. socket.io-client stays an import.

// src/client.ts
import { io } from "socket.io-client";

// src/emitter.ts
var TypedEmitter = class {
  #handlers = /* @__PURE__ */ new Map();
  /** Calls `handler` on every `event`; returns a function that removes it. */
  on(event, handler) {
    let set = this.#handlers.get(event);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.#handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }
  /** Calls `handler` on the next `event` only. */
  once(event, handler) {
    const off = this.on(event, ((...args) => {
      off();
      handler(...args);
    }));
    return off;
  }
  /** Removes `handler` (or every handler of `event` when none is given). */
  off(event, handler) {
    if (handler === void 0) {
      this.#handlers.delete(event);
      return;
    }
    this.#handlers.get(event)?.delete(handler);
  }
  /** How many handlers `event` has. */
  listenerCount(event) {
    return this.#handlers.get(event)?.size ?? 0;
  }
  /** Calls every handler of `event` in the order added. A handler that throws does not
   * stop the others nor the client's bookkeeping: its error is rethrown on its own, as
   * an uncaught exception. */
  emit(event, ...args) {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
};

// src/errors.ts
var SERVER_CODES = /* @__PURE__ */ new Set([
  "AUTH_FAILED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "INVALID_PAYLOAD",
  "CHANNEL_ERROR",
  "MESSAGE_TOO_LARGE",
  "UNAVAILABLE",
  "CONFLICT",
  "NOT_FOUND",
  "INTERNAL"
]);
var RETRYABLE = /* @__PURE__ */ new Set([
  "RATE_LIMITED",
  "UNAVAILABLE",
  "CONFLICT",
  "INTERNAL",
  "TIMEOUT",
  "DISCONNECTED",
  "CONNECT_FAILED"
]);
var ChatwireError = class _ChatwireError extends Error {
  name = "ChatwireError";
  code;
  retryAfterMs;
  event;
  constructor(code, message, options = {}) {
    super(message, options.cause === void 0 ? void 0 : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options.retryAfterMs;
    this.event = options.event;
  }
  /** Whether retrying the same request later may succeed (after `retryAfterMs` when
   * given). */
  get retryable() {
    return RETRYABLE.has(this.code);
  }
  /** The error an ack or an `error` event carried. A body of another shape is reported
   * as `INTERNAL`. */
  static fromBody(body, event) {
    const b = typeof body === "object" && body !== null ? body : {};
    const code = typeof b.code === "string" && SERVER_CODES.has(b.code) ? b.code : "INTERNAL";
    const message = typeof b.message === "string" ? b.message : `unexpected answer: ${JSON.stringify(body)}`;
    const retryAfterMs = typeof b.retry_after_ms === "number" ? b.retry_after_ms : void 0;
    return new _ChatwireError(code, message, { retryAfterMs, event });
  }
  /** A refused socket.io connection: the server's `connect_error` message is
   * `"<CODE>: <text>"`. */
  static fromConnectError(err) {
    const match = /^([A-Z_]+): ?(.*)$/s.exec(err.message);
    if (match && SERVER_CODES.has(match[1])) {
      const data = err.data;
      const retryAfterMs = typeof data?.retry_after_ms === "number" ? data.retry_after_ms : void 0;
      return new _ChatwireError(match[1], match[2], {
        retryAfterMs,
        cause: err
      });
    }
    return new _ChatwireError("CONNECT_FAILED", err.message, { cause: err });
  }
};
function isChatwireError(e, code) {
  return e instanceof ChatwireError && (code === void 0 || e.code === code);
}

// src/ledger.ts
var RoomLedger = class {
  #rooms = /* @__PURE__ */ new Map();
  /** The rooms joined, in the order joined. */
  rooms() {
    return [...this.#rooms].filter(([, s]) => s.joined).map(([room]) => room);
  }
  /** Whether `room` is joined (or being joined). */
  has(room) {
    return this.#rooms.has(room);
  }
  /** Whether `room` is joined. */
  joined(room) {
    return this.#rooms.get(room)?.joined ?? false;
  }
  /** The last offset of `room` accounted for: `null` when unknown, `undefined` when the
   * room is not joined. */
  last(room) {
    return this.#rooms.get(room)?.last;
  }
  /** Whether a join or rejoin of `room` is under way. */
  pending(room) {
    return this.#rooms.get(room)?.pending ?? false;
  }
  /** A first join of `room` is about to be sent: its live events wait from now on. */
  startJoin(room) {
    if (!this.#rooms.has(room)) {
      this.#rooms.set(room, { joined: false, last: null, own: /* @__PURE__ */ new Set(), pending: true, queue: [] });
    }
  }
  /** A rejoin of `room` is about to be sent; returns the offset to recover from (`null`:
   * unknown). */
  startRejoin(room) {
    const state = this.#rooms.get(room);
    if (!state) return null;
    state.pending = true;
    return state.last;
  }
  /** The (re)join of `room` from offset `since` was answered: `recovered` and the
   * messages after `since` the server handed over. */
  finish(room, since, recovered, messages) {
    const state = this.#rooms.get(room);
    if (!state) return { recovered: [], live: [] };
    state.joined = true;
    const out = { recovered: [], live: [] };
    if (recovered && since !== null) {
      if (state.last === null || since > state.last) state.last = since;
      for (const message of messages) {
        const d = this.#accept(state, message, true);
        if (d) out.recovered.push(d);
      }
    } else {
      state.last = null;
      state.own.clear();
    }
    out.live = this.#release(state);
    return out;
  }
  /** A join of `room` failed for good: forgets the room; returns what waited. */
  abandon(room) {
    const state = this.#rooms.get(room);
    if (!state) return [];
    this.#rooms.delete(room);
    return state.queue.map(passThrough);
  }
  /** Forgets `room` (left, or removed by the backend). */
  remove(room) {
    this.#rooms.delete(room);
  }
  /** Forgets every room. */
  clear() {
    this.#rooms.clear();
  }
  /** A live event arrived: what to hand to the application now (nothing while the room's
   * (re)join is under way, nothing for a message already accounted for). */
  live(event) {
    const room = event.kind === "deleted" ? event.deleted.room : event.message.room;
    const state = room === void 0 ? void 0 : this.#rooms.get(room);
    if (!state) return [passThrough(event)];
    if (state.pending) {
      state.queue.push(event);
      return [];
    }
    const d = this.#process(state, event);
    return d ? [d] : [];
  }
  /** The client's own send to `room` was stored at `offset`. */
  own(room, offset) {
    const state = this.#rooms.get(room);
    if (!state || state.last !== null && offset <= state.last) return;
    if (state.last !== null && offset === state.last + 1) {
      state.last = offset;
      absorb(state);
    } else {
      state.own.add(offset);
    }
  }
  #release(state) {
    state.pending = false;
    const queued = state.queue;
    state.queue = [];
    const out = [];
    for (const event of queued) {
      const d = this.#process(state, event);
      if (d) out.push(d);
    }
    return out;
  }
  #process(state, event) {
    return event.kind === "message" ? this.#accept(state, event.message, false) : passThrough(event);
  }
  #accept(state, message, recovered) {
    const offset = message.offset;
    if (typeof offset !== "number") return { kind: "message", message, recovered };
    if (state.last !== null && offset <= state.last) return null;
    const mine = state.own.delete(offset);
    state.last = offset;
    for (const o of state.own) if (o <= offset) state.own.delete(o);
    absorb(state);
    return mine ? null : { kind: "message", message, recovered };
  }
};
function absorb(state) {
  while (state.last !== null && state.own.delete(state.last + 1)) state.last += 1;
}
function passThrough(event) {
  return event.kind === "message" ? { kind: "message", message: event.message, recovered: false } : event;
}

// src/typing.ts
var TypingIndicator = class {
  room;
  #send;
  #refreshMs;
  #idleMs;
  #onError;
  #typing = false;
  #lastSent = 0;
  #idle;
  constructor(room, send, options = {}) {
    this.room = room;
    this.#send = send;
    this.#refreshMs = options.refreshMs ?? 5e3;
    this.#idleMs = options.idleMs ?? 3e3;
    this.#onError = options.onError;
  }
  /** Whether the indicator is on. */
  get typing() {
    return this.#typing;
  }
  /** The user typed: starts the indicator, or refreshes it when `refreshMs` passed. */
  keystroke() {
    const now = Date.now();
    if (!this.#typing || now - this.#lastSent >= this.#refreshMs) {
      this.#typing = true;
      this.#lastSent = now;
      this.#emit(true);
    }
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.stop(), this.#idleMs);
  }
  /** Ends the indicator (sends `typing: false` if it was on). */
  stop() {
    clearTimeout(this.#idle);
    this.#idle = void 0;
    if (!this.#typing) return;
    this.#typing = false;
    this.#emit(false);
  }
  /** The user's message went out: the server ended the indicator itself. */
  sent() {
    clearTimeout(this.#idle);
    this.#idle = void 0;
    this.#typing = false;
  }
  #emit(typing) {
    this.#send(typing).catch((error) => this.#onError?.(error));
  }
};
var TypingTracker = class {
  #expiryMs;
  #changed;
  #rooms = /* @__PURE__ */ new Map();
  constructor(expiryMs, changed) {
    this.#expiryMs = expiryMs;
    this.#changed = changed;
  }
  /** The users typing in `room` now. */
  users(room) {
    return [...this.#rooms.get(room)?.values() ?? []].map((e) => e.user);
  }
  /** Records a `user:typing` event. */
  set(room, user, typing) {
    let users = this.#rooms.get(room);
    const had = users?.get(user.id);
    if (had) clearTimeout(had.timer);
    if (!typing) {
      if (had) this.#drop(room, user.id);
      return;
    }
    if (!users) {
      users = /* @__PURE__ */ new Map();
      this.#rooms.set(room, users);
    }
    const timer = setTimeout(() => this.#drop(room, user.id), this.#expiryMs);
    users.set(user.id, { user, timer });
    if (!had) this.#changed(room, this.users(room));
  }
  /** `user` posted in `room`: their indicator is over. */
  posted(room, userId) {
    const had = this.#rooms.get(room)?.get(userId);
    if (!had) return;
    clearTimeout(had.timer);
    this.#drop(room, userId);
  }
  /** Ends every indicator, telling each room that had one. */
  reset() {
    const rooms = [...this.#rooms.keys()];
    this.clear();
    for (const room of rooms) this.#changed(room, []);
  }
  /** Forgets `room` (or every room), without telling. */
  clear(room) {
    const rooms = room === void 0 ? [...this.#rooms.keys()] : [room];
    for (const r of rooms) {
      for (const e of this.#rooms.get(r)?.values() ?? []) clearTimeout(e.timer);
      this.#rooms.delete(r);
    }
  }
  #drop(room, userId) {
    const users = this.#rooms.get(room);
    if (!users?.delete(userId)) return;
    if (users.size === 0) this.#rooms.delete(room);
    this.#changed(room, this.users(room));
  }
};

// src/client.ts
var ChatwireClient = class extends TypedEmitter {
  /** The pod URLs, tried in turn. */
  urls;
  #token;
  #name;
  #userId;
  #transports;
  #ackTimeoutMs;
  #connectTimeoutMs;
  #reconnection;
  #delayMs;
  #delayMaxMs;
  #socketOptions;
  #ledger = new RoomLedger();
  #typers;
  #rosters = /* @__PURE__ */ new Map();
  #indicators = /* @__PURE__ */ new Map();
  /** The threads open, by thread room (`thread:<root id>`): reopened on every rejoin of
   * their root's room. */
  #threads = /* @__PURE__ */ new Map();
  #inflight = /* @__PURE__ */ new Set();
  #waiters = /* @__PURE__ */ new Set();
  #timers = /* @__PURE__ */ new Set();
  #socket = null;
  #ready = null;
  #index = 0;
  #attempts = 0;
  #retry;
  #closed = false;
  #tokenSubject;
  constructor(options) {
    super();
    const urls = options.urls ?? (options.url === void 0 ? [] : [options.url]);
    if (urls.length === 0) throw new TypeError("ChatwireClient needs `url` or `urls`");
    this.urls = [...urls];
    this.#token = options.token;
    this.#name = options.name;
    this.#userId = options.userId;
    this.#transports = options.transports;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 1e4;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5e3;
    this.#reconnection = options.reconnection ?? true;
    this.#delayMs = options.reconnectionDelayMs ?? 500;
    this.#delayMaxMs = options.reconnectionDelayMaxMs ?? 5e3;
    this.#socketOptions = options.socketOptions ?? {};
    this.#typers = new TypingTracker(
      options.typingExpiryMs ?? 8e3,
      (room, users) => this.emit("typing:change", { room, users })
    );
    if (typeof options.token === "string") this.#tokenSubject = tokenSubject(options.token);
    if (options.autoConnect ?? true) this.connect();
  }
  // ---- connection -------------------------------------------------------------------
  /** Whether the client is connected and has sent its rejoins. */
  get connected() {
    return this.#ready !== null && this.#ready.connected;
  }
  /** The socket.io id of the current connection. */
  get id() {
    return this.#socket?.id;
  }
  /** The transport of the current connection (`"polling"`, `"websocket"`), while
   * there is one. */
  get transport() {
    return this.#socket?.io.engine?.transport?.name;
  }
  /** The URL of the current (or next) connection. */
  get url() {
    return this.urls[this.#index];
  }
  /** This client's user id: `userId` if given, else the token's `sub`, else (anonymous)
   * the connection id. */
  get userId() {
    return this.#userId ?? this.#tokenSubject ?? this.#socket?.id;
  }
  /** The rooms joined: rejoined on every reconnect. */
  get rooms() {
    return this.#ledger.rooms();
  }
  /** The offset of the last message of `room` the application has had (or sent);
   * `null` when not known, `undefined` when the room is not joined. */
  lastOffset(room) {
    return this.#ledger.last(room);
  }
  /** Resolves once connected with every rejoin sent (calls wait for this themselves);
   * rejects after `ackTimeoutMs` without a connection. */
  async ready() {
    await this.#whenReady();
  }
  /** Connects (again, after `close()` or a refusal). */
  connect() {
    this.#closed = false;
    if (this.#socket !== null || this.#retry !== void 0) return;
    this.#open(this.#index);
  }
  /** Disconnects for good (until `connect()`): pending calls reject with `CLOSED`. The
   * rooms and offsets are kept, so a later `connect()` rejoins and recovers. */
  close() {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = void 0;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const indicator of this.#indicators.values()) indicator.sent();
    this.#typers.clear();
    const closed = new ChatwireError("CLOSED", "the client was closed");
    this.#failInflight(null, closed);
    this.#failWaiters(closed);
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = null;
    if (socket === null) return;
    const url = this.url;
    const wasConnected = socket.connected;
    socket.disconnect();
    if (wasConnected) this.emit("disconnect", { url, reason: "io client disconnect", willReconnect: false });
  }
  #socketIoReconnects() {
    return this.urls.length === 1 && this.#reconnection;
  }
  #open(index) {
    this.#retry = void 0;
    this.#index = index;
    const url = this.urls[index];
    const auth = this.#auth();
    const socket = io(url, {
      ...this.#socketOptions,
      ...this.#transports === void 0 ? {} : { transports: this.#transports },
      ...auth === void 0 ? {} : { auth },
      forceNew: true,
      autoConnect: false,
      reconnection: this.#socketIoReconnects(),
      reconnectionDelay: this.#delayMs,
      reconnectionDelayMax: this.#delayMaxMs,
      timeout: this.#connectTimeoutMs
    });
    this.#socket = socket;
    this.#wire(socket);
    socket.connect();
  }
  #auth() {
    const token = this.#token;
    const named = this.#name === void 0 ? {} : { name: this.#name };
    if (token === void 0) return this.#name === void 0 ? void 0 : named;
    if (typeof token === "string") return { ...named, token };
    return (cb) => {
      Promise.resolve().then(token).then(
        (fresh) => {
          this.#tokenSubject = tokenSubject(fresh);
          cb({ ...named, token: fresh });
        },
        // No token: the server decides (AUTH_FAILED where one is required).
        () => cb(named)
      );
    };
  }
  #wire(s) {
    const current = () => this.#socket === s;
    s.on("connect", () => current() && this.#onConnect(s));
    s.on("disconnect", (reason) => current() && this.#onDisconnect(s, reason));
    s.on("connect_error", (err) => current() && this.#onConnectError(s, err));
    s.on("message:new", (message) => {
      if (current()) this.#deliverAll(this.#ledger.live({ kind: "message", message }));
    });
    s.on("message:updated", (message) => {
      if (current()) this.#deliverAll(this.#ledger.live({ kind: "updated", message }));
    });
    s.on("message:deleted", (deleted) => {
      if (current()) this.#deliverAll(this.#ledger.live({ kind: "deleted", deleted }));
    });
    s.on("presence:update", (event) => current() && this.#onPresence(event));
    s.on("user:typing", (event) => {
      if (!current()) return;
      this.emit("user:typing", event);
      this.#typers.set(event.room, event.user, event.typing);
    });
    s.on("room:removed", (event) => {
      if (!current()) return;
      if (event.user === this.userId) this.#forget(event.room);
      this.emit("room:removed", event);
    });
    s.on("receipt:update", (event) => current() && this.emit("receipt:update", event));
    s.on("message:reactions", (event) => current() && this.emit("message:reactions", event));
    s.on("thread:updated", (event) => current() && this.emit("thread:updated", event));
    s.on("channel:updated", (event) => {
      if (!current()) return;
      const { channel } = event;
      const userId = this.userId;
      if (channel.private && userId !== void 0 && !channel.members.includes(userId)) this.#forget(event.room);
      this.emit("channel:updated", event);
    });
    s.on("channel:deleted", (event) => {
      if (!current()) return;
      this.#forget(event.room);
      this.emit("channel:deleted", event);
    });
    s.on("session:ended", (event) => current() && this.emit("session:ended", event));
    s.on("error", (body) => current() && this.emit("error", ChatwireError.fromBody(body)));
  }
  #onConnect(s) {
    this.#attempts = 0;
    this.emit("connect", { url: this.url, id: s.id ?? "" });
    void this.#rejoinAll(s);
  }
  #onDisconnect(s, reason) {
    this.#ready = null;
    this.#failInflight(
      s,
      new ChatwireError("DISCONNECTED", `the connection was lost (${reason}) before the answer came`)
    );
    this.#typers.reset();
    const url = this.url;
    let willReconnect;
    if (this.#closed || reason === "io client disconnect") {
      willReconnect = false;
    } else if (this.#socketIoReconnects()) {
      willReconnect = s.active;
    } else {
      willReconnect = this.#reconnection && reason !== "io server disconnect";
    }
    if (!(willReconnect && this.#socketIoReconnects())) {
      this.#drop(s);
      if (willReconnect) {
        this.#attempts = 0;
        this.#scheduleNext();
      } else {
        this.#failWaiters(new ChatwireError("DISCONNECTED", `disconnected (${reason})`));
      }
    }
    this.emit("disconnect", { url, reason, willReconnect });
  }
  #onConnectError(s, err) {
    const url = this.url;
    const refused = !s.active;
    const error = refused ? ChatwireError.fromConnectError(err) : new ChatwireError("CONNECT_FAILED", `cannot connect to ${url}: ${err.message}`, { cause: err });
    const willRetry = !this.#closed && this.#reconnection && (!refused || error.retryable);
    if (!(willRetry && !refused && this.#socketIoReconnects())) {
      this.#drop(s);
      if (willRetry) {
        this.#attempts += 1;
        this.#scheduleNext(error.retryAfterMs);
      } else {
        this.#failWaiters(error);
      }
    }
    this.emit("connect_error", { url, error, willRetry });
  }
  /** Stops using `s`. */
  #drop(s) {
    if (this.#socket === s) this.#socket = null;
    if (this.#ready === s) this.#ready = null;
    s.disconnect();
  }
  /** Opens the next URL: at once after a lost connection and while untried URLs remain,
   * then with a doubling delay for each round of failures. */
  #scheduleNext(atLeastMs = 0) {
    const n = this.urls.length;
    const round = Math.floor(this.#attempts / n);
    const backoff = round === 0 ? 0 : Math.min(this.#delayMs * 2 ** (round - 1), this.#delayMaxMs);
    const delay = Math.max(atLeastMs, backoff * (0.5 + Math.random() / 2));
    const next = (this.#index + 1) % n;
    this.#retry = setTimeout(() => {
      if (!this.#closed) this.#open(next);
    }, delay);
  }
  // ---- rejoin and recovery ----------------------------------------------------------
  /** Rejoins every room on a new connection: first every room whose last offset is
   * known (sent at once, before any other call, so the server handles them first), then
   * the others; calls wait until all are sent. */
  async #rejoinAll(s) {
    const unknown = [];
    for (const room of this.#ledger.rooms()) {
      const since = this.#ledger.startRejoin(room);
      if (since === null) unknown.push(room);
      else this.#rejoin(s, room, since, true);
    }
    for (const room of unknown) {
      if (this.#socket !== s || !s.connected) return;
      await this.#rejoinUnknown(s, room);
    }
    if (this.#socket === s && s.connected) this.#setReady(s);
  }
  /** Rejoins `room` whose last offset is not known: from its newest message, reporting
   * `recovered: false` (a gap may lie before it). */
  async #rejoinUnknown(s, room) {
    try {
      const since = await this.#newest(s, room);
      this.#rejoin(s, room, since, false);
    } catch (err) {
      this.#rejoinFailed(s, room, err);
    }
  }
  #rejoin(s, room, since, provable) {
    const url = this.url;
    this.#call(s, "room:join", { room, since }, (ack) => {
      const recovered = ack["recovered"] === true;
      const messages = Array.isArray(ack["messages"]) ? ack["messages"] : [];
      const finished = this.#ledger.finish(room, since, recovered, messages);
      this.#deliverAll(finished.recovered);
      this.emit("rejoined", {
        room,
        recovered: provable && recovered,
        since: provable ? since : null,
        missed: finished.recovered.length,
        url
      });
      this.#deliverAll(finished.live);
      for (const thread of this.#threads.values()) {
        if (thread.room === room) this.#call(s, "thread:open", thread).catch(() => void 0);
      }
      if (this.#rosters.has(room)) this.#presence(s, room).catch(() => void 0);
    }).catch((err) => this.#rejoinFailed(s, room, err));
  }
  #rejoinFailed(s, room, err) {
    if (this.#socket !== s) return;
    const error = asChatwireError(err);
    if (error.code === "DISCONNECTED" || error.code === "CLOSED") return;
    const willRetry = error.retryable;
    if (willRetry) {
      this.#later(error.retryAfterMs ?? 1e3, () => {
        if (this.#socket !== s || !s.connected || !this.#ledger.joined(room)) return;
        const since = this.#ledger.startRejoin(room);
        if (since === null) void this.#rejoinUnknown(s, room);
        else this.#rejoin(s, room, since, true);
      });
    } else {
      this.#forget(room);
    }
    this.emit("rejoin:failed", { room, error, willRetry });
  }
  /** The offset of `room`'s newest message (0 for an empty room). */
  async #newest(s, room) {
    const page = await this.#call(s, "message:history", { room, limit: 1 });
    const messages = page["messages"];
    return messages?.at(-1)?.offset ?? 0;
  }
  #setReady(s) {
    this.#ready = s;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(s);
    }
    this.#waiters.clear();
  }
  #deliverAll(deliveries) {
    for (const d of deliveries) {
      if (d.kind === "message") {
        if (d.message.room !== void 0) this.#typers.posted(d.message.room, d.message.from);
        this.emit("message:new", d.message, { recovered: d.recovered });
      } else if (d.kind === "updated") {
        this.emit("message:updated", d.message);
      } else {
        this.emit("message:deleted", d.deleted);
      }
    }
  }
  /** Stops rejoining `room` and forgets what the client kept of it. */
  #forget(room) {
    this.#deliverAll(this.#ledger.abandon(room));
    this.#rosters.delete(room);
    this.#typers.clear(room);
    this.#indicators.get(room)?.sent();
    this.#indicators.delete(room);
    for (const [key, thread] of this.#threads) if (thread.room === room) this.#threads.delete(key);
  }
  #onPresence(event) {
    const roster = this.#rosters.get(event.room);
    if (roster) {
      if (event.status === "offline") roster.delete(event.user.id);
      else roster.set(event.user.id, { ...event.user, status: event.status });
    }
    this.emit("presence:update", event);
  }
  // ---- calls ------------------------------------------------------------------------
  /** Emits `event` on `s` with an ack. `onOk` runs inside the ack callback, before any
   * later event of the socket is handled. */
  #call(s, event, payload, onOk) {
    if (!s.connected || this.#socket !== s) {
      return Promise.reject(new ChatwireError("DISCONNECTED", `not connected: ${event} not sent`, { event }));
    }
    return new Promise((resolve, reject) => {
      const entry = { socket: s, done: false, reject };
      this.#inflight.add(entry);
      s.timeout(this.#ackTimeoutMs).emit(event, payload, (err, body) => {
        if (entry.done) return;
        entry.done = true;
        this.#inflight.delete(entry);
        if (err) {
          reject(new ChatwireError("TIMEOUT", `no answer to ${event} within ${this.#ackTimeoutMs} ms`, { event }));
        } else if (isOk(body)) {
          try {
            onOk?.(body);
          } finally {
            resolve(body);
          }
        } else {
          reject(ChatwireError.fromBody(body, event));
        }
      });
    });
  }
  /** A connected socket whose rejoins are sent, waiting up to `ackTimeoutMs`. */
  #whenReady() {
    if (this.#closed) return Promise.reject(new ChatwireError("CLOSED", "the client was closed"));
    if (this.#ready !== null && this.#ready.connected) return Promise.resolve(this.#ready);
    if (this.#socket === null && this.#retry === void 0) {
      return Promise.reject(new ChatwireError("DISCONNECTED", "not connected: call connect()"));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new ChatwireError("DISCONNECTED", `not connected within ${this.#ackTimeoutMs} ms`));
        }, this.#ackTimeoutMs)
      };
      this.#waiters.add(waiter);
    });
  }
  async #request(event, payload, onOk) {
    const s = await this.#whenReady();
    return this.#call(s, event, payload, onOk);
  }
  #failInflight(s, error) {
    for (const entry of [...this.#inflight]) {
      if (s !== null && entry.socket !== s) continue;
      entry.done = true;
      this.#inflight.delete(entry);
      entry.reject(error);
    }
  }
  #failWaiters(error) {
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiters.clear();
  }
  #later(ms, f) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      f();
    }, ms);
    this.#timers.add(timer);
  }
  /** Joins `room` and keeps it joined across reconnects. With `since` (the offset of the
   * last message seen), the messages after it are handed to `message:new` first
   * (`recovered: true`); without, the join starts from the room's newest message, so
   * that a reconnect, even before any message arrives, misses nothing. Joining a room
   * already joined changes nothing. */
  async join(room, options = {}) {
    if (this.#ledger.has(room)) {
      await this.#request("room:join", { room });
      return { room, recovered: true, missed: 0, since: this.#ledger.last(room) ?? 0 };
    }
    const s = await this.#whenReady();
    const since = options.since ?? await this.#newest(s, room);
    if (this.#ledger.has(room)) return this.join(room);
    this.#ledger.startJoin(room);
    let result = { room, recovered: false, missed: 0, since };
    try {
      await this.#call(s, "room:join", { room, since }, (ack) => {
        const recovered = ack["recovered"] === true;
        const messages = Array.isArray(ack["messages"]) ? ack["messages"] : [];
        const finished = this.#ledger.finish(room, since, recovered, messages);
        result = { room, recovered, missed: finished.recovered.length, since };
        this.#deliverAll(finished.recovered);
        this.#deliverAll(finished.live);
      });
    } catch (err) {
      if (!this.#ledger.joined(room)) this.#deliverAll(this.#ledger.abandon(room));
      throw err;
    }
    return result;
  }
  /** Leaves `room`: it is no longer rejoined. */
  async leave(room) {
    const joined = this.#ledger.has(room);
    this.#forget(room);
    if (!joined && this.#ready === null) return { room };
    try {
      await this.#request("room:leave", { room });
    } catch (err) {
      if (joined && isDisconnected(err)) return { room };
      throw err;
    }
    return { room };
  }
  /** Sends `content` to `room` (`null`: to everyone); resolves once stored. */
  async send(room, content) {
    const payload = room === null ? { content } : { room, content };
    const ack = await this.#request("message:send", payload, (a) => {
      if (room !== null && typeof a["offset"] === "number") this.#ledger.own(room, a["offset"]);
    });
    if (room !== null) this.#indicators.get(room)?.sent();
    return sendAck(ack);
  }
  /** Replies `content` in the thread of message `rootId` of `room` (a member of `room`);
   * resolves once stored, with the reply's offset in the thread. Replying opens the
   * thread: its replies reach `message:new` from now on, as `openThread` does. */
  async reply(room, rootId, content) {
    const ack = await this.#request("message:send", { room, content, thread: rootId }, () => {
      this.#threads.set(threadRoom(rootId), { room, id: rootId });
    });
    return sendAck(ack);
  }
  /** A page of `room`'s history: up to `limit` (1-100, default 50) messages before
   * `before` (an offset, or a message id; default: after the newest), oldest first,
   * tombstones included. Needs no join. */
  async history(room, options = {}) {
    return this.#page("message:history", { room }, options);
  }
  /** A page of the replies in the thread of message `rootId` of `room`, as `history`:
   * up to `limit` before `before` (an offset in the thread), oldest first. */
  async threadHistory(room, rootId, options = {}) {
    return this.#page("message:history", { room, thread: rootId }, options);
  }
  /** Stored messages with every word of `q` (any case), newest first: in `room`, or in
   * every room the connection is in; up to `limit` (1-50, default 20) after the message
   * `before` (an id: the last of the page before). Edits are found by their new text,
   * tombstones never. */
  async search(q, options = {}) {
    const query = { q };
    if (options.room !== void 0) query["room"] = options.room;
    return this.#page("message:search", query, options);
  }
  /** `event` with `payload`, `before` and `limit`: its page of messages. */
  async #page(event, payload, options) {
    const body = { ...payload };
    if (options.before !== void 0) body["before"] = options.before;
    if (options.limit !== void 0) body["limit"] = options.limit;
    const ack = await this.#request(event, body);
    return { messages: ack["messages"] ?? [], hasMore: ack["has_more"] === true };
  }
  /** Marks `room` read up to `offset` (clamped to its newest message; a position never
   * moves back, so the answer may be further on). The room's members, your other devices
   * included, hear `receipt:update` when it moved. Member only (`CHANNEL_ERROR`). */
  async markRead(room, offset) {
    const ack = await this.#request("message:read", { room, offset });
    return { room: ack["room"], readOffset: ack["read_offset"] };
  }
  async unread(room) {
    const ack = await this.#request("room:unread", room === void 0 ? {} : { room });
    if (room !== void 0) return roomUnread(ack);
    return (ack["rooms"] ?? []).map(roomUnread);
  }
  /** Adds your `emoji` reaction to message `id` of `room` (`add` false takes it back;
   * one per user, emoji and message, so a repeat changes nothing): the message's counts
   * after. The room hears `message:reactions`. */
  async react(room, id, emoji, add = true) {
    const ack = await this.#request("message:react", { room, id, emoji, add });
    return { id: ack["id"], reactions: ack["reactions"] ?? {} };
  }
  /** Opens the thread of message `rootId` of `room` (a member of `room`): its replies
   * reach `message:new` from now on, with `room` `thread:<rootId>` and `thread` set, until
   * `closeThread` or leaving `room`. Reopened after every reconnect. */
  async openThread(room, rootId) {
    const ack = await this.#request("thread:open", { room, id: rootId }, () => {
      this.#threads.set(threadRoom(rootId), { room, id: rootId });
    });
    const info = { thread: ack["thread"], replyCount: ack["reply_count"] ?? 0 };
    if (typeof ack["last_reply_at"] === "string") info.lastReplyAt = ack["last_reply_at"];
    return info;
  }
  /** Closes the thread of message `rootId` of `room`: no more of its replies. */
  async closeThread(room, rootId) {
    this.#threads.delete(threadRoom(rootId));
    const ack = await this.#request("thread:close", { room, id: rootId });
    return { thread: ack["thread"] };
  }
  /** The threads open (by `openThread` or `reply`), as their roots' `{ id, room }`. */
  get threads() {
    return [...this.#threads.values()];
  }
  /** Replaces the content of your message `id` in `room` (author only: `FORBIDDEN`);
   * the room gets `message:updated`. */
  async edit(room, id, content) {
    const ack = await this.#request("message:edit", { room, id, content });
    return { id: ack["id"] };
  }
  /** Deletes your message `id` in `room` (author only): it becomes a tombstone; the room
   * gets `message:deleted`. */
  async delete(room, id) {
    const ack = await this.#request("message:delete", { room, id });
    return { id: ack["id"] };
  }
  /** Sets your status in every room you are in. */
  async setStatus(status) {
    await this.#request("presence:update", { status });
  }
  /** The online users of `room`, each once. Also loads the room's roster, which the
   * client then keeps current from `presence:update` (see `online`). */
  async presence(room) {
    const s = await this.#whenReady();
    return this.#presence(s, room);
  }
  async #presence(s, room) {
    const ack = await this.#call(s, "presence:list", { room });
    const users = ack["users"] ?? [];
    this.#rosters.set(room, new Map(users.map((u) => [u.id, u])));
    this.emit("presence:roster", { room, users });
    return users;
  }
  /** The roster of `room` as the client keeps it (`undefined` until `presence(room)`). */
  online(room) {
    const roster = this.#rosters.get(room);
    return roster && [...roster.values()];
  }
  /** Says you started or stopped typing in `room` (see also `typingIndicator`). */
  async typing(room, typing) {
    await this.#request("user:typing", { room, typing });
  }
  /** The indicator of your typing in `room` (one per room): `keystroke()` on input,
   * `stop()` when done. */
  typingIndicator(room, options = {}) {
    let indicator = this.#indicators.get(room);
    if (!indicator) {
      indicator = new TypingIndicator(room, (typing) => this.typing(room, typing), options);
      this.#indicators.set(room, indicator);
    }
    return indicator;
  }
  /** The other users typing in `room` now. */
  typingUsers(room) {
    return this.#typers.users(room);
  }
  /** Calls the application's RPC hook (`rpc:<method>`, docs/backend.md): its result. */
  async rpc(method, params) {
    const ack = await this.#request(`rpc:${method}`, params === void 0 ? {} : params);
    return ack["result"];
  }
};
function threadRoom(rootId) {
  return `thread:${rootId}`;
}
function sendAck(ack) {
  const result = {
    id: ack["id"],
    offset: ack["offset"],
    timestamp: ack["timestamp"]
  };
  if (ack["degraded"] === true) result.degraded = true;
  return result;
}
function roomUnread(body) {
  return {
    room: body["room"],
    readOffset: body["read_offset"] ?? 0,
    unread: body["unread"] ?? 0,
    lastOffset: body["last_offset"] ?? 0
  };
}
function isOk(body) {
  return typeof body === "object" && body !== null && body.status === "ok";
}
function isDisconnected(err) {
  return err instanceof ChatwireError && (err.code === "DISCONNECTED" || err.code === "CLOSED");
}
function asChatwireError(err) {
  if (err instanceof ChatwireError) return err;
  return new ChatwireError("INTERNAL", err instanceof Error ? err.message : String(err), { cause: err });
}
function tokenSubject(token) {
  const payload = token.split(".")[1];
  if (!payload) return void 0;
  try {
    const binary = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    const sub = claims?.sub;
    return typeof sub === "string" ? sub : void 0;
  } catch {
    return void 0;
  }
}
export {
  ChatwireClient,
  ChatwireError,
  RoomLedger,
  TypingIndicator,
  TypingTracker,
  isChatwireError
};
