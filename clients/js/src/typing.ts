// Typing indicators: TypingIndicator sends the user's own (started on a keystroke,
// refreshed while typing goes on, stopped when it pauses), TypingTracker keeps who else
// is typing in each room from `user:typing` events.

import type { User } from "./types.js";

export interface TypingIndicatorOptions {
  /** Resend `typing: true` at most this often while keystrokes go on (the server ends
   * an indicator not refreshed for `TYPING_TIMEOUT`, 6 s by default). Default 5000. */
  refreshMs?: number;
  /** Send `typing: false` after this long without a keystroke. Default 3000. */
  idleMs?: number;
  /** Told of a failed typing event (they are best effort: `RATE_LIMITED` after many). */
  onError?: (error: unknown) => void;
}

/** The user's own typing indicator in one room. Call `keystroke()` on every input
 * event and `stop()` when the input is cleared or left; a `send` to the room ends it
 * (the server clears it itself). */
export class TypingIndicator {
  readonly room: string;
  readonly #send: (typing: boolean) => Promise<void>;
  readonly #refreshMs: number;
  readonly #idleMs: number;
  readonly #onError: ((error: unknown) => void) | undefined;
  #typing = false;
  #lastSent = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;

  constructor(room: string, send: (typing: boolean) => Promise<void>, options: TypingIndicatorOptions = {}) {
    this.room = room;
    this.#send = send;
    this.#refreshMs = options.refreshMs ?? 5000;
    this.#idleMs = options.idleMs ?? 3000;
    this.#onError = options.onError;
  }

  /** Whether the indicator is on. */
  get typing(): boolean {
    return this.#typing;
  }

  /** The user typed: starts the indicator, or refreshes it when `refreshMs` passed. */
  keystroke(): void {
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
  stop(): void {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    if (!this.#typing) return;
    this.#typing = false;
    this.#emit(false);
  }

  /** The user's message went out: the server ended the indicator itself. */
  sent(): void {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#typing = false;
  }

  #emit(typing: boolean): void {
    this.#send(typing).catch((error: unknown) => this.#onError?.(error));
  }
}

/** Who is typing in each room, from `user:typing` events. An indicator also ends when
 * its user's message arrives, and after `expiryMs` without a refresh (the events are
 * volatile: a `typing: false` may be lost). */
export class TypingTracker {
  readonly #expiryMs: number;
  readonly #changed: (room: string, users: User[]) => void;
  readonly #rooms = new Map<string, Map<string, { user: User; timer: ReturnType<typeof setTimeout> }>>();

  constructor(expiryMs: number, changed: (room: string, users: User[]) => void) {
    this.#expiryMs = expiryMs;
    this.#changed = changed;
  }

  /** The users typing in `room` now. */
  users(room: string): User[] {
    return [...(this.#rooms.get(room)?.values() ?? [])].map((e) => e.user);
  }

  /** Records a `user:typing` event. */
  set(room: string, user: User, typing: boolean): void {
    let users = this.#rooms.get(room);
    const had = users?.get(user.id);
    if (had) clearTimeout(had.timer);
    if (!typing) {
      if (had) this.#drop(room, user.id);
      return;
    }
    if (!users) {
      users = new Map();
      this.#rooms.set(room, users);
    }
    const timer = setTimeout(() => this.#drop(room, user.id), this.#expiryMs);
    users.set(user.id, { user, timer });
    if (!had) this.#changed(room, this.users(room));
  }

  /** `user` posted in `room`: their indicator is over. */
  posted(room: string, userId: string): void {
    const had = this.#rooms.get(room)?.get(userId);
    if (!had) return;
    clearTimeout(had.timer);
    this.#drop(room, userId);
  }

  /** Ends every indicator, telling each room that had one. */
  reset(): void {
    const rooms = [...this.#rooms.keys()];
    this.clear();
    for (const room of rooms) this.#changed(room, []);
  }

  /** Forgets `room` (or every room), without telling. */
  clear(room?: string): void {
    const rooms = room === undefined ? [...this.#rooms.keys()] : [room];
    for (const r of rooms) {
      for (const e of this.#rooms.get(r)?.values() ?? []) clearTimeout(e.timer);
      this.#rooms.delete(r);
    }
  }

  #drop(room: string, userId: string): void {
    const users = this.#rooms.get(room);
    if (!users?.delete(userId)) return;
    if (users.size === 0) this.#rooms.delete(room);
    this.#changed(room, this.users(room));
  }
}
