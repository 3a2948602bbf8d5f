// The wire shapes of chatwire's Socket.IO protocol (docs/events.md), as the server sends
// them. Field names are the wire's; the client's own results are camelCase.

/** A message's kind, the `type` key on the wire. */
export type MessageType =
  | "chat"
  | "presence"
  | "notification"
  | "system"
  | "error"
  | "ping"
  | "pong"
  | "typing";

/** A user as the server names them: the token's `sub` and `name`, or, for anonymous
 * connections, the connection's id for both (or the display name it chose). */
export interface User {
  id: string;
  name: string;
  /** The connection chose the name itself (`auth.name`): no token or backend vouched
   * for it. */
  unverified?: true;
}

/** A user's status. `offline` is only ever reported, never set. */
export type Status = "online" | "away" | "busy" | "offline";

/** The statuses a client may set with `setStatus`. */
export type SettableStatus = Exclude<Status, "offline">;

/** A message's `data`: `content` for chat messages; `edited_at` once edited; a
 * tombstone (a deleted message) has `deleted` and `deleted_at` instead. Messages
 * published by the application's backend may carry more fields. */
export interface MessageData {
  content?: string;
  edited_at?: string;
  deleted?: true;
  deleted_at?: string;
  [field: string]: unknown;
}

/** A stored message (`realtime.Message`): `message:new`, `message:updated`, history and
 * recovery all carry this shape. */
export interface ChatMessage {
  /** UUID v7, set by the server. */
  id: string;
  type: MessageType;
  /** Absent on global (room-less) messages. */
  room?: string;
  /** The sender's user id (`"server"` for messages the server originates). */
  from: string;
  data: MessageData;
  /** RFC 3339 UTC with milliseconds. */
  timestamp: string;
  /** The message's place in its room: 1, 2, 3, ... without gaps. Every stored message
   * has one. */
  offset: number;
  /** The sender, when they have a display name (`from` is their id). */
  user?: User;
  /** A thread root's number of replies (history pages only). */
  reply_count?: number;
  /** When a thread root got its last reply (history pages only). */
  last_reply_at?: string;
  /** Reaction counts by emoji (history pages only; absent without any). */
  reactions?: Reactions;
  /** On a thread reply: its root's id and room (its own `room` is `thread:<root id>`). */
  thread?: ThreadRef;
}

/** Reaction counts by emoji, e.g. `{"👍": 2}`. */
export type Reactions = Record<string, number>;

/** The thread a reply belongs to: its root's `id` and `room`. */
export interface ThreadRef {
  id: string;
  room: string;
}

/** `message:deleted`: the message `id` of `room` became a tombstone. */
export interface MessageDeleted {
  room: string;
  id: string;
}

/** `presence:update`: a user came online, went offline or set a status in `room`. */
export interface PresenceUpdate {
  room: string;
  user: User;
  status: Status;
}

/** One online user of a room, as `presence:list` answers. */
export interface PresenceUser extends User {
  status: Status;
}

/** `user:typing`: someone else started or stopped typing in `room`. */
export interface TypingUpdate {
  room: string;
  user: User;
  typing: boolean;
}

/** `room:removed`: the application's backend removed `user` from `room`. */
export interface RoomRemoved {
  room: string;
  user: string;
  reason: string;
}

/** One reader's position in a `receipt:update`: `user` has read up to `offset`. */
export interface ReadReceipt {
  user: User;
  offset: number;
}

/** `receipt:update`: the readers of `room` whose position moved in the last second, each
 * once with their newest position (their own devices hear it too). At most one per room
 * per second from each pod. */
export interface ReceiptUpdate {
  room: string;
  receipts: ReadReceipt[];
}

/** `message:reactions`: `user` added (or took back, `add: false`) `emoji` on message
 * `id` of `room`; `reactions` are its counts after. */
export interface MessageReactions {
  room: string;
  id: string;
  reactions: Reactions;
  user: User;
  emoji: string;
  add: boolean;
}

/** `thread:updated`: the thread of message `id` of `room` got a reply. */
export interface ThreadUpdated {
  room: string;
  id: string;
  /** The newest reply's offset in the thread: take the largest seen. */
  reply_count: number;
  last_reply_at: string;
}

/** A room as a record: its title, topic, creator, and for a private one its members. */
export interface Channel {
  room: string;
  title: string;
  topic: string;
  private: boolean;
  created_by: string;
  created_at: string;
  updated_at: string;
  /** A private channel's member ids (the creator included); empty for a public one. */
  members: string[];
}

/** `channel:updated`: the room's channel was created or changed. */
export interface ChannelUpdated {
  room: string;
  channel: Channel;
}

/** `channel:deleted`: the room's channel was deleted with its messages; the connection
 * is out of the room. */
export interface ChannelDeleted {
  room: string;
}

/** `session:ended`: the application's backend disconnected this user. */
export interface SessionEnded {
  reason: string;
}

/** The error body of an ack or an `error` event (docs/errors.md). */
export interface ErrorBody {
  status: "error";
  code: string;
  message: string;
  retry_after_ms?: number;
}

/** What `send` resolves to once the message is stored. */
export interface SendAck {
  id: string;
  offset: number;
  timestamp: string;
  /** Stored, but not yet published to other pods (they read it from the log later). */
  degraded?: true;
}

/** What `join` resolves to. */
export interface JoinResult {
  room: string;
  /** Whether the server proved that nothing was missed since the offset the join
   * started from (`since`, or the room's newest message when none was given). `false`:
   * page `history` back from the first message you get. */
  recovered: boolean;
  /** How many messages the join handed to the `message:new` handlers (the ones after
   * `since`). */
  missed: number;
  /** The offset the join started from. */
  since: number;
}

/** A page of history, oldest first; `hasMore` when older messages remain. */
export interface HistoryPage {
  messages: ChatMessage[];
  hasMore: boolean;
}

/** Search results, newest first; `hasMore` when more match (page on with `before`, the
 * id of the last message). */
export interface SearchPage {
  messages: ChatMessage[];
  hasMore: boolean;
}

/** What `markRead` resolves to: the read position now (it never moves back). */
export interface ReadPosition {
  room: string;
  readOffset: number;
}

/** A room's read position and unread count, as `unread` resolves. */
export interface RoomUnread {
  room: string;
  /** The offset read up to (0: nothing read). */
  readOffset: number;
  /** Messages after `readOffset` sent by others and not deleted (at most 999). */
  unread: number;
  /** The room's newest offset. */
  lastOffset: number;
}

/** What `react` resolves to: the message's reaction counts after. */
export interface ReactionCounts {
  id: string;
  reactions: Reactions;
}

/** What `openThread` resolves to. */
export interface ThreadInfo {
  /** The thread's room, `thread:<root id>`: replies arrive with it as their `room`. */
  thread: string;
  replyCount: number;
  /** Absent before the first reply. */
  lastReplyAt?: string;
}
