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
 * connections, the connection's id for both. */
export interface User {
  id: string;
  name: string;
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
