// ChatwireClient: one chatwire session over the official socket.io-client, across
// reconnects and across a list of pod URLs. Every client event of docs/events.md is a
// promise-returning call; every server event is a typed event. The client remembers the
// rooms joined and the last offset of each, and after every reconnect rejoins each room
// from there, handing the missed messages to the same `message:new` handlers, in order
// and once (RoomLedger does the bookkeeping).

import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";

import { TypedEmitter } from "./emitter.js";
import { ChatwireError } from "./errors.js";
import { RoomLedger, type Delivery } from "./ledger.js";
import { TypingIndicator, TypingTracker, type TypingIndicatorOptions } from "./typing.js";
import type {
  ChannelDeleted,
  ChannelUpdated,
  ChatMessage,
  HistoryPage,
  JoinResult,
  MessageDeleted,
  MessageReactions,
  PresenceUpdate,
  PresenceUser,
  ReactionCounts,
  Reactions,
  ReadPosition,
  ReceiptUpdate,
  RoomRemoved,
  RoomUnread,
  SearchPage,
  SendAck,
  SessionEnded,
  SettableStatus,
  ThreadInfo,
  ThreadRef,
  ThreadUpdated,
  TypingUpdate,
  User,
} from "./types.js";

export interface ChatwireClientOptions {
  /** The server, e.g. `"http://localhost:8084"`. Give `url` or `urls`. */
  url?: string;
  /** Several pods of one chat, tried in turn: when a connection fails or is lost, the
   * client moves to the next one (no load balancer needed). */
  urls?: readonly string[];
  /** A JWT for the handshake (`auth.token`), or a function asked for a fresh one before
   * every connection. */
  token?: string | (() => string | Promise<string>);
  /** A display name for a connection no token names (`auth.name`, 1-64 characters): its
   * messages, presence and typing then carry it, marked `unverified`. A token's name
   * wins. */
  name?: string;
  /** The user this client acts as, when neither the token's `sub` nor (for anonymous
   * connections) the connection id names it: e.g. when a connect hook names the user.
   * Used to tell when the backend removed this user from a room. */
  userId?: string;
  /** socket.io transports (default: socket.io's, long-polling upgraded to WebSocket). */
  transports?: ("polling" | "websocket" | "webtransport")[];
  /** How long a call waits for its answer (and for a connection, when there is none).
   * Default 10000. */
  ackTimeoutMs?: number;
  /** How long one connection attempt may take. Default 5000. */
  connectTimeoutMs?: number;
  /** Reconnect after a lost connection (default `true`). */
  reconnection?: boolean;
  /** First wait before trying again once every URL failed; doubles up to
   * `reconnectionDelayMaxMs`. Defaults 500 and 5000. */
  reconnectionDelayMs?: number;
  reconnectionDelayMaxMs?: number;
  /** Someone else's typing indicator ends after this long without a refresh (default
   * 8000: the server's TYPING_TIMEOUT, 6 s, plus a margin). */
  typingExpiryMs?: number;
  /** Connect at once (default `true`); otherwise call `connect()`. */
  autoConnect?: boolean;
  /** More socket.io options. The client manages `reconnection*`, `timeout`, `auth`,
   * `autoConnect` and `forceNew` itself. */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

/** Reported after every rejoin of a room on a new connection. */
export interface RejoinInfo {
  room: string;
  /** `true`: the messages missed since `since` were all handed to `message:new` (with
   * `recovered: true`), and live ones follow with no gap. `false`: the server could not
   * prove that nothing was missed (the log no longer keeps them all, more than 1000 were
   * missed, or the last offset was not known): page `history` back from the first
   * message that follows. */
  recovered: boolean;
  /** The offset the rejoin recovered from (`null` when it was not known). */
  since: number | null;
  /** How many missed messages were handed to `message:new`. */
  missed: number;
  /** The server the client is now connected to. */
  url: string;
}

/** The client's events: the server's (docs/events.md) and its own. */
export interface ChatwireEvents {
  /** A message: live, or missed and recovered on a rejoin (`recovered: true`). Each
   * message of a room once, in offset order. A sender gets no `message:new` for its own
   * message (its `send` resolves instead), except one whose ack was lost with the
   * connection: it comes back here when the rejoin recovers it. */
  "message:new": [message: ChatMessage, info: { recovered: boolean }];
  "message:updated": [message: ChatMessage];
  "message:deleted": [event: MessageDeleted];
  "presence:update": [event: PresenceUpdate];
  "user:typing": [event: TypingUpdate];
  /** The backend removed a user from a room; when it is this client's user, the client
   * no longer rejoins the room. */
  "room:removed": [event: RoomRemoved];
  /** A member's read position in a room moved (`markRead`; yours too, from another
   * device): at most one per user and room per second, the newest position last. */
  "receipt:update": [event: ReceiptUpdate];
  /** Someone added or took back a reaction: the message's counts after. */
  "message:reactions": [event: MessageReactions];
  /** A thread of a room got a reply (its replies reach only those who opened it). */
  "thread:updated": [event: ThreadUpdated];
  /** A room's channel was created or changed; when it is private and this client's user
   * is not among its members, the client no longer rejoins the room. */
  "channel:updated": [event: ChannelUpdated];
  /** A room's channel was deleted with its messages: the client is out of the room and
   * no longer rejoins it. */
  "channel:deleted": [event: ChannelDeleted];
  /** The backend disconnected this user; the disconnect follows, without reconnecting. */
  "session:ended": [event: SessionEnded];
  /** An `error` event from the server (a failure the client could not tie to a call). */
  error: [error: ChatwireError];
  connect: [info: { url: string; id: string }];
  disconnect: [info: { url: string; reason: string; willReconnect: boolean }];
  connect_error: [info: { url: string; error: ChatwireError; willRetry: boolean }];
  rejoined: [info: RejoinInfo];
  "rejoin:failed": [info: { room: string; error: ChatwireError; willRetry: boolean }];
  /** The users typing in a room changed (from `user:typing`, a message of theirs, or an
   * indicator that expired). */
  "typing:change": [info: { room: string; users: User[] }];
  /** A room's roster of online users was (re)loaded: after `presence(room)`, and again
   * after each rejoin of a room whose roster was loaded. */
  "presence:roster": [info: { room: string; users: PresenceUser[] }];
}

interface Inflight {
  socket: Socket;
  done: boolean;
  reject: (error: ChatwireError) => void;
}

interface Waiter {
  resolve: (socket: Socket) => void;
  reject: (error: ChatwireError) => void;
  timer: ReturnType<typeof setTimeout>;
}

type Ok = { status: "ok"; [field: string]: unknown };

export class ChatwireClient extends TypedEmitter<ChatwireEvents> {
  /** The pod URLs, tried in turn. */
  readonly urls: readonly string[];
  readonly #token: ChatwireClientOptions["token"];
  readonly #name: string | undefined;
  readonly #userId: string | undefined;
  readonly #transports: ChatwireClientOptions["transports"];
  readonly #ackTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #reconnection: boolean;
  readonly #delayMs: number;
  readonly #delayMaxMs: number;
  readonly #socketOptions: Partial<ManagerOptions & SocketOptions>;
  readonly #ledger = new RoomLedger();
  readonly #typers: TypingTracker;
  readonly #rosters = new Map<string, Map<string, PresenceUser>>();
  readonly #indicators = new Map<string, TypingIndicator>();
  /** The threads open, by thread room (`thread:<root id>`): reopened on every rejoin of
   * their root's room. */
  readonly #threads = new Map<string, ThreadRef>();
  readonly #inflight = new Set<Inflight>();
  readonly #waiters = new Set<Waiter>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #socket: Socket | null = null;
  #ready: Socket | null = null;
  #index = 0;
  #attempts = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #tokenSubject: string | undefined;

  constructor(options: ChatwireClientOptions) {
    super();
    const urls = options.urls ?? (options.url === undefined ? [] : [options.url]);
    if (urls.length === 0) throw new TypeError("ChatwireClient needs `url` or `urls`");
    this.urls = [...urls];
    this.#token = options.token;
    this.#name = options.name;
    this.#userId = options.userId;
    this.#transports = options.transports;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.#reconnection = options.reconnection ?? true;
    this.#delayMs = options.reconnectionDelayMs ?? 500;
    this.#delayMaxMs = options.reconnectionDelayMaxMs ?? 5_000;
    this.#socketOptions = options.socketOptions ?? {};
    this.#typers = new TypingTracker(options.typingExpiryMs ?? 8_000, (room, users) =>
      this.emit("typing:change", { room, users }),
    );
    if (typeof options.token === "string") this.#tokenSubject = tokenSubject(options.token);
    if (options.autoConnect ?? true) this.connect();
  }

  // ---- connection -------------------------------------------------------------------

  /** Whether the client is connected and has sent its rejoins. */
  get connected(): boolean {
    return this.#ready !== null && this.#ready.connected;
  }

  /** The socket.io id of the current connection. */
  get id(): string | undefined {
    return this.#socket?.id;
  }

  /** The transport of the current connection (`"polling"`, `"websocket"`), while
   * there is one. */
  get transport(): string | undefined {
    return this.#socket?.io.engine?.transport?.name;
  }

  /** The URL of the current (or next) connection. */
  get url(): string {
    return this.urls[this.#index]!;
  }

  /** This client's user id: `userId` if given, else the token's `sub`, else (anonymous)
   * the connection id. */
  get userId(): string | undefined {
    return this.#userId ?? this.#tokenSubject ?? this.#socket?.id;
  }

  /** The rooms joined: rejoined on every reconnect. */
  get rooms(): string[] {
    return this.#ledger.rooms();
  }

  /** The offset of the last message of `room` the application has had (or sent);
   * `null` when not known, `undefined` when the room is not joined. */
  lastOffset(room: string): number | null | undefined {
    return this.#ledger.last(room);
  }

  /** Resolves once connected with every rejoin sent (calls wait for this themselves);
   * rejects after `ackTimeoutMs` without a connection. */
  async ready(): Promise<void> {
    await this.#whenReady();
  }

  /** Connects (again, after `close()` or a refusal). */
  connect(): void {
    this.#closed = false;
    if (this.#socket !== null || this.#retry !== undefined) return;
    this.#open(this.#index);
  }

  /** Disconnects for good (until `connect()`): pending calls reject with `CLOSED`. The
   * rooms and offsets are kept, so a later `connect()` rejoins and recovers. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
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

  #socketIoReconnects(): boolean {
    return this.urls.length === 1 && this.#reconnection;
  }

  #open(index: number): void {
    this.#retry = undefined;
    this.#index = index;
    const url = this.urls[index]!;
    const auth = this.#auth();
    const socket = io(url, {
      ...this.#socketOptions,
      ...(this.#transports === undefined ? {} : { transports: this.#transports }),
      ...(auth === undefined ? {} : { auth }),
      forceNew: true,
      autoConnect: false,
      reconnection: this.#socketIoReconnects(),
      reconnectionDelay: this.#delayMs,
      reconnectionDelayMax: this.#delayMaxMs,
      timeout: this.#connectTimeoutMs,
    });
    this.#socket = socket;
    this.#wire(socket);
    socket.connect();
  }

  #auth(): SocketOptions["auth"] | undefined {
    const token = this.#token;
    const named = this.#name === undefined ? {} : { name: this.#name };
    if (token === undefined) return this.#name === undefined ? undefined : named;
    if (typeof token === "string") return { ...named, token };
    return (cb: (data: object) => void) => {
      Promise.resolve()
        .then(token)
        .then(
          (fresh) => {
            this.#tokenSubject = tokenSubject(fresh);
            cb({ ...named, token: fresh });
          },
          // No token: the server decides (AUTH_FAILED where one is required).
          () => cb(named),
        );
    };
  }

  #wire(s: Socket): void {
    const current = () => this.#socket === s;
    s.on("connect", () => current() && this.#onConnect(s));
    s.on("disconnect", (reason: string) => current() && this.#onDisconnect(s, reason));
    s.on("connect_error", (err: Error) => current() && this.#onConnectError(s, err));
    s.on("message:new", (message: ChatMessage) => {
      if (current()) this.#deliverAll(this.#ledger.live({ kind: "message", message }));
    });
    s.on("message:updated", (message: ChatMessage) => {
      if (current()) this.#deliverAll(this.#ledger.live({ kind: "updated", message }));
    });
    s.on("message:deleted", (deleted: MessageDeleted) => {
      if (current()) this.#deliverAll(this.#ledger.live({ kind: "deleted", deleted }));
    });
    s.on("presence:update", (event: PresenceUpdate) => current() && this.#onPresence(event));
    s.on("user:typing", (event: TypingUpdate) => {
      if (!current()) return;
      this.emit("user:typing", event);
      this.#typers.set(event.room, event.user, event.typing);
    });
    s.on("room:removed", (event: RoomRemoved) => {
      if (!current()) return;
      if (event.user === this.userId) this.#forget(event.room);
      this.emit("room:removed", event);
    });
    s.on("receipt:update", (event: ReceiptUpdate) => current() && this.emit("receipt:update", event));
    s.on("message:reactions", (event: MessageReactions) => current() && this.emit("message:reactions", event));
    s.on("thread:updated", (event: ThreadUpdated) => current() && this.emit("thread:updated", event));
    s.on("channel:updated", (event: ChannelUpdated) => {
      if (!current()) return;
      const { channel } = event;
      const userId = this.userId;
      if (channel.private && userId !== undefined && !channel.members.includes(userId)) this.#forget(event.room);
      this.emit("channel:updated", event);
    });
    s.on("channel:deleted", (event: ChannelDeleted) => {
      if (!current()) return;
      this.#forget(event.room);
      this.emit("channel:deleted", event);
    });
    s.on("session:ended", (event: SessionEnded) => current() && this.emit("session:ended", event));
    s.on("error", (body: unknown) => current() && this.emit("error", ChatwireError.fromBody(body)));
  }

  #onConnect(s: Socket): void {
    this.#attempts = 0;
    this.emit("connect", { url: this.url, id: s.id ?? "" });
    void this.#rejoinAll(s);
  }

  #onDisconnect(s: Socket, reason: string): void {
    this.#ready = null;
    this.#failInflight(
      s,
      new ChatwireError("DISCONNECTED", `the connection was lost (${reason}) before the answer came`),
    );
    // Who was typing is unknown on the next connection.
    this.#typers.reset();
    const url = this.url;
    let willReconnect: boolean;
    if (this.#closed || reason === "io client disconnect") {
      willReconnect = false;
    } else if (this.#socketIoReconnects()) {
      // socket.io reconnects by itself, unless the server disconnected this socket.
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

  #onConnectError(s: Socket, err: Error): void {
    const url = this.url;
    // A socket the server refused is no longer active; a transport error leaves it so.
    const refused = !s.active;
    const error = refused
      ? ChatwireError.fromConnectError(err)
      : new ChatwireError("CONNECT_FAILED", `cannot connect to ${url}: ${err.message}`, { cause: err });
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
  #drop(s: Socket): void {
    if (this.#socket === s) this.#socket = null;
    if (this.#ready === s) this.#ready = null;
    s.disconnect();
  }

  /** Opens the next URL: at once after a lost connection and while untried URLs remain,
   * then with a doubling delay for each round of failures. */
  #scheduleNext(atLeastMs = 0): void {
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
  async #rejoinAll(s: Socket): Promise<void> {
    const unknown: string[] = [];
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
  async #rejoinUnknown(s: Socket, room: string): Promise<void> {
    try {
      const since = await this.#newest(s, room);
      this.#rejoin(s, room, since, false);
    } catch (err) {
      this.#rejoinFailed(s, room, err);
    }
  }

  #rejoin(s: Socket, room: string, since: number, provable: boolean): void {
    const url = this.url;
    this.#call<Ok>(s, "room:join", { room, since }, (ack) => {
      const recovered = ack["recovered"] === true;
      const messages = Array.isArray(ack["messages"]) ? (ack["messages"] as ChatMessage[]) : [];
      const finished = this.#ledger.finish(room, since, recovered, messages);
      this.#deliverAll(finished.recovered);
      this.emit("rejoined", {
        room,
        recovered: provable && recovered,
        since: provable ? since : null,
        missed: finished.recovered.length,
        url,
      });
      this.#deliverAll(finished.live);
      // The new connection is in no thread: the open ones are opened again (replies sent
      // meanwhile are not handed over; page them with threadHistory).
      for (const thread of this.#threads.values()) {
        if (thread.room === room) this.#call<Ok>(s, "thread:open", thread).catch(() => undefined);
      }
      // A roster the app loaded is read again (the one kept may be stale); on a failure
      // it stays as it was until the next rejoin.
      if (this.#rosters.has(room)) this.#presence(s, room).catch(() => undefined);
    }).catch((err: unknown) => this.#rejoinFailed(s, room, err));
  }

  #rejoinFailed(s: Socket, room: string, err: unknown): void {
    if (this.#socket !== s) return;
    const error = asChatwireError(err);
    // Lost with the connection: the next one rejoins it.
    if (error.code === "DISCONNECTED" || error.code === "CLOSED") return;
    const willRetry = error.retryable;
    if (willRetry) {
      this.#later(error.retryAfterMs ?? 1_000, () => {
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
  async #newest(s: Socket, room: string): Promise<number> {
    const page = await this.#call<Ok>(s, "message:history", { room, limit: 1 });
    const messages = page["messages"] as ChatMessage[] | undefined;
    return messages?.at(-1)?.offset ?? 0;
  }

  #setReady(s: Socket): void {
    this.#ready = s;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(s);
    }
    this.#waiters.clear();
  }

  #deliverAll(deliveries: readonly Delivery[]): void {
    for (const d of deliveries) {
      if (d.kind === "message") {
        if (d.message.room !== undefined) this.#typers.posted(d.message.room, d.message.from);
        this.emit("message:new", d.message, { recovered: d.recovered });
      } else if (d.kind === "updated") {
        this.emit("message:updated", d.message);
      } else {
        this.emit("message:deleted", d.deleted);
      }
    }
  }

  /** Stops rejoining `room` and forgets what the client kept of it. */
  #forget(room: string): void {
    this.#deliverAll(this.#ledger.abandon(room));
    this.#rosters.delete(room);
    this.#typers.clear(room);
    this.#indicators.get(room)?.sent();
    this.#indicators.delete(room);
    // Leaving a room closes its threads.
    for (const [key, thread] of this.#threads) if (thread.room === room) this.#threads.delete(key);
  }

  #onPresence(event: PresenceUpdate): void {
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
  #call<T extends Ok>(s: Socket, event: string, payload: unknown, onOk?: (ack: T) => void): Promise<T> {
    if (!s.connected || this.#socket !== s) {
      return Promise.reject(new ChatwireError("DISCONNECTED", `not connected: ${event} not sent`, { event }));
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Inflight = { socket: s, done: false, reject };
      this.#inflight.add(entry);
      s.timeout(this.#ackTimeoutMs).emit(event, payload, (err: Error | null, body: unknown) => {
        if (entry.done) return;
        entry.done = true;
        this.#inflight.delete(entry);
        if (err) {
          reject(new ChatwireError("TIMEOUT", `no answer to ${event} within ${this.#ackTimeoutMs} ms`, { event }));
        } else if (isOk(body)) {
          try {
            onOk?.(body as T);
          } finally {
            resolve(body as T);
          }
        } else {
          reject(ChatwireError.fromBody(body, event));
        }
      });
    });
  }

  /** A connected socket whose rejoins are sent, waiting up to `ackTimeoutMs`. */
  #whenReady(): Promise<Socket> {
    if (this.#closed) return Promise.reject(new ChatwireError("CLOSED", "the client was closed"));
    if (this.#ready !== null && this.#ready.connected) return Promise.resolve(this.#ready);
    if (this.#socket === null && this.#retry === undefined) {
      return Promise.reject(new ChatwireError("DISCONNECTED", "not connected: call connect()"));
    }
    return new Promise<Socket>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new ChatwireError("DISCONNECTED", `not connected within ${this.#ackTimeoutMs} ms`));
        }, this.#ackTimeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  async #request<T extends Ok>(event: string, payload: unknown, onOk?: (ack: T) => void): Promise<T> {
    const s = await this.#whenReady();
    return this.#call<T>(s, event, payload, onOk);
  }

  #failInflight(s: Socket | null, error: ChatwireError): void {
    for (const entry of [...this.#inflight]) {
      if (s !== null && entry.socket !== s) continue;
      entry.done = true;
      this.#inflight.delete(entry);
      entry.reject(error);
    }
  }

  #failWaiters(error: ChatwireError): void {
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiters.clear();
  }

  #later(ms: number, f: () => void): void {
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
  async join(room: string, options: { since?: number } = {}): Promise<JoinResult> {
    if (this.#ledger.has(room)) {
      await this.#request<Ok>("room:join", { room });
      return { room, recovered: true, missed: 0, since: this.#ledger.last(room) ?? 0 };
    }
    const s = await this.#whenReady();
    const since = options.since ?? (await this.#newest(s, room));
    if (this.#ledger.has(room)) return this.join(room);
    this.#ledger.startJoin(room);
    let result: JoinResult = { room, recovered: false, missed: 0, since };
    try {
      await this.#call<Ok>(s, "room:join", { room, since }, (ack) => {
        const recovered = ack["recovered"] === true;
        const messages = Array.isArray(ack["messages"]) ? (ack["messages"] as ChatMessage[]) : [];
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
  async leave(room: string): Promise<{ room: string }> {
    const joined = this.#ledger.has(room);
    this.#forget(room);
    if (!joined && this.#ready === null) return { room };
    try {
      await this.#request<Ok>("room:leave", { room });
    } catch (err) {
      // No connection, no membership: a new one does not rejoin the room.
      if (joined && isDisconnected(err)) return { room };
      throw err;
    }
    return { room };
  }

  /** Sends `content` to `room` (`null`: to everyone); resolves once stored. */
  async send(room: string | null, content: string): Promise<SendAck> {
    const payload = room === null ? { content } : { room, content };
    const ack = await this.#request<Ok>("message:send", payload, (a) => {
      if (room !== null && typeof a["offset"] === "number") this.#ledger.own(room, a["offset"]);
    });
    if (room !== null) this.#indicators.get(room)?.sent();
    return sendAck(ack);
  }

  /** Replies `content` in the thread of message `rootId` of `room` (a member of `room`);
   * resolves once stored, with the reply's offset in the thread. Replying opens the
   * thread: its replies reach `message:new` from now on, as `openThread` does. */
  async reply(room: string, rootId: string, content: string): Promise<SendAck> {
    const ack = await this.#request<Ok>("message:send", { room, content, thread: rootId }, () => {
      this.#threads.set(threadRoom(rootId), { room, id: rootId });
    });
    return sendAck(ack);
  }

  /** A page of `room`'s history: up to `limit` (1-100, default 50) messages before
   * `before` (an offset, or a message id; default: after the newest), oldest first,
   * tombstones included. Needs no join. */
  async history(room: string, options: { before?: number | string; limit?: number } = {}): Promise<HistoryPage> {
    return this.#page("message:history", { room }, options);
  }

  /** A page of the replies in the thread of message `rootId` of `room`, as `history`:
   * up to `limit` before `before` (an offset in the thread), oldest first. */
  async threadHistory(
    room: string,
    rootId: string,
    options: { before?: number | string; limit?: number } = {},
  ): Promise<HistoryPage> {
    return this.#page("message:history", { room, thread: rootId }, options);
  }

  /** Stored messages with every word of `q` (any case), newest first: in `room`, or in
   * every room the connection is in; up to `limit` (1-50, default 20) after the message
   * `before` (an id: the last of the page before). Edits are found by their new text,
   * tombstones never. */
  async search(q: string, options: { room?: string; before?: string; limit?: number } = {}): Promise<SearchPage> {
    const query: Record<string, unknown> = { q };
    if (options.room !== undefined) query["room"] = options.room;
    return this.#page("message:search", query, options);
  }

  /** `event` with `payload`, `before` and `limit`: its page of messages. */
  async #page(
    event: string,
    payload: Record<string, unknown>,
    options: { before?: number | string; limit?: number },
  ): Promise<HistoryPage> {
    const body: Record<string, unknown> = { ...payload };
    if (options.before !== undefined) body["before"] = options.before;
    if (options.limit !== undefined) body["limit"] = options.limit;
    const ack = await this.#request<Ok>(event, body);
    return { messages: (ack["messages"] as ChatMessage[]) ?? [], hasMore: ack["has_more"] === true };
  }

  /** Marks `room` read up to `offset` (clamped to its newest message; a position never
   * moves back, so the answer may be further on). The room's members, your other devices
   * included, hear `receipt:update` when it moved. Member only (`CHANNEL_ERROR`). */
  async markRead(room: string, offset: number): Promise<ReadPosition> {
    const ack = await this.#request<Ok>("message:read", { room, offset });
    return { room: ack["room"] as string, readOffset: ack["read_offset"] as number };
  }

  /** Your read position and unread count in `room`; without a room, those of every room
   * you have a position in, most recently read first (at most 100). */
  unread(room: string): Promise<RoomUnread>;
  unread(): Promise<RoomUnread[]>;
  async unread(room?: string): Promise<RoomUnread | RoomUnread[]> {
    const ack = await this.#request<Ok>("room:unread", room === undefined ? {} : { room });
    if (room !== undefined) return roomUnread(ack);
    return ((ack["rooms"] as Record<string, unknown>[]) ?? []).map(roomUnread);
  }

  /** Adds your `emoji` reaction to message `id` of `room` (`add` false takes it back;
   * one per user, emoji and message, so a repeat changes nothing): the message's counts
   * after. The room hears `message:reactions`. */
  async react(room: string, id: string, emoji: string, add = true): Promise<ReactionCounts> {
    const ack = await this.#request<Ok>("message:react", { room, id, emoji, add });
    return { id: ack["id"] as string, reactions: (ack["reactions"] as Reactions) ?? {} };
  }

  /** Opens the thread of message `rootId` of `room` (a member of `room`): its replies
   * reach `message:new` from now on, with `room` `thread:<rootId>` and `thread` set, until
   * `closeThread` or leaving `room`. Reopened after every reconnect. */
  async openThread(room: string, rootId: string): Promise<ThreadInfo> {
    const ack = await this.#request<Ok>("thread:open", { room, id: rootId }, () => {
      this.#threads.set(threadRoom(rootId), { room, id: rootId });
    });
    const info: ThreadInfo = { thread: ack["thread"] as string, replyCount: (ack["reply_count"] as number) ?? 0 };
    if (typeof ack["last_reply_at"] === "string") info.lastReplyAt = ack["last_reply_at"];
    return info;
  }

  /** Closes the thread of message `rootId` of `room`: no more of its replies. */
  async closeThread(room: string, rootId: string): Promise<{ thread: string }> {
    this.#threads.delete(threadRoom(rootId));
    const ack = await this.#request<Ok>("thread:close", { room, id: rootId });
    return { thread: ack["thread"] as string };
  }

  /** The threads open (by `openThread` or `reply`), as their roots' `{ id, room }`. */
  get threads(): ThreadRef[] {
    return [...this.#threads.values()];
  }

  /** Replaces the content of your message `id` in `room` (author only: `FORBIDDEN`);
   * the room gets `message:updated`. */
  async edit(room: string, id: string, content: string): Promise<{ id: string }> {
    const ack = await this.#request<Ok>("message:edit", { room, id, content });
    return { id: ack["id"] as string };
  }

  /** Deletes your message `id` in `room` (author only): it becomes a tombstone; the room
   * gets `message:deleted`. */
  async delete(room: string, id: string): Promise<{ id: string }> {
    const ack = await this.#request<Ok>("message:delete", { room, id });
    return { id: ack["id"] as string };
  }

  /** Sets your status in every room you are in. */
  async setStatus(status: SettableStatus): Promise<void> {
    await this.#request<Ok>("presence:update", { status });
  }

  /** The online users of `room`, each once. Also loads the room's roster, which the
   * client then keeps current from `presence:update` (see `online`). */
  async presence(room: string): Promise<PresenceUser[]> {
    const s = await this.#whenReady();
    return this.#presence(s, room);
  }

  async #presence(s: Socket, room: string): Promise<PresenceUser[]> {
    const ack = await this.#call<Ok>(s, "presence:list", { room });
    const users = (ack["users"] as PresenceUser[]) ?? [];
    this.#rosters.set(room, new Map(users.map((u) => [u.id, u])));
    this.emit("presence:roster", { room, users });
    return users;
  }

  /** The roster of `room` as the client keeps it (`undefined` until `presence(room)`). */
  online(room: string): PresenceUser[] | undefined {
    const roster = this.#rosters.get(room);
    return roster && [...roster.values()];
  }

  /** Says you started or stopped typing in `room` (see also `typingIndicator`). */
  async typing(room: string, typing: boolean): Promise<void> {
    await this.#request<Ok>("user:typing", { room, typing });
  }

  /** The indicator of your typing in `room` (one per room): `keystroke()` on input,
   * `stop()` when done. */
  typingIndicator(room: string, options: TypingIndicatorOptions = {}): TypingIndicator {
    let indicator = this.#indicators.get(room);
    if (!indicator) {
      indicator = new TypingIndicator(room, (typing) => this.typing(room, typing), options);
      this.#indicators.set(room, indicator);
    }
    return indicator;
  }

  /** The other users typing in `room` now. */
  typingUsers(room: string): User[] {
    return this.#typers.users(room);
  }

  /** Calls the application's RPC hook (`rpc:<method>`, docs/backend.md): its result. */
  async rpc<T = unknown>(method: string, params?: unknown): Promise<T> {
    const ack = await this.#request<Ok>(`rpc:${method}`, params === undefined ? {} : params);
    return ack["result"] as T;
  }
}

/** The room of the thread of message `rootId`. */
function threadRoom(rootId: string): string {
  return `thread:${rootId}`;
}

/** What a `message:send` ack says. */
function sendAck(ack: Ok): SendAck {
  const result: SendAck = {
    id: ack["id"] as string,
    offset: ack["offset"] as number,
    timestamp: ack["timestamp"] as string,
  };
  if (ack["degraded"] === true) result.degraded = true;
  return result;
}

/** A `room:unread` answer for one room. */
function roomUnread(body: Record<string, unknown>): RoomUnread {
  return {
    room: body["room"] as string,
    readOffset: (body["read_offset"] as number) ?? 0,
    unread: (body["unread"] as number) ?? 0,
    lastOffset: (body["last_offset"] as number) ?? 0,
  };
}

function isOk(body: unknown): body is Ok {
  return typeof body === "object" && body !== null && (body as { status?: unknown }).status === "ok";
}

function isDisconnected(err: unknown): boolean {
  return err instanceof ChatwireError && (err.code === "DISCONNECTED" || err.code === "CLOSED");
}

function asChatwireError(err: unknown): ChatwireError {
  if (err instanceof ChatwireError) return err;
  return new ChatwireError("INTERNAL", err instanceof Error ? err.message : String(err), { cause: err });
}

/** The `sub` of a JWT (not verified: only to know which user this client is). */
function tokenSubject(token: string): string | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const binary = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    const sub = (claims as { sub?: unknown } | null)?.sub;
    return typeof sub === "string" ? sub : undefined;
  } catch {
    return undefined;
  }
}
