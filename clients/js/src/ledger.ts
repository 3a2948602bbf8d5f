// RoomLedger: what the client knows of each room it joined — the last offset the
// application has accounted for, its own sends above it, and whether a (re)join is
// under way — and the one rule that gives the application every message once, in
// order: a message at or below the last offset is dropped, and a room's live events
// wait while its join or rejoin is under way, then follow the recovered messages.
// Pure bookkeeping, no I/O: the client feeds it and emits what it hands back.

import type { ChatMessage, MessageDeleted } from "./types.js";

/** An event of a room, as it arrived. */
export type RoomEvent =
  | { kind: "message"; message: ChatMessage }
  | { kind: "updated"; message: ChatMessage }
  | { kind: "deleted"; deleted: MessageDeleted };

/** An event to hand to the application; `recovered` for messages a rejoin recovered. */
export type Delivery =
  | { kind: "message"; message: ChatMessage; recovered: boolean }
  | { kind: "updated"; message: ChatMessage }
  | { kind: "deleted"; deleted: MessageDeleted };

interface RoomState {
  /** Joined (rejoined on every reconnect), or only being joined for the first time. */
  joined: boolean;
  /** Every offset up to this one is accounted for: delivered, or the client's own send.
   * `null`: not known (after a recovery that could not be proven gap-free, until the
   * next message). */
  last: number | null;
  /** Offsets of the client's own acked sends above `last` (a sender gets no
   * `message:new` for its own message, and its ack may come before earlier messages). */
  own: Set<number>;
  /** A join or rejoin is under way: live events wait in `queue`. */
  pending: boolean;
  queue: RoomEvent[];
}

/** The result of a finished (re)join: the recovered messages first, then the live events
 * that waited for them. */
export interface Finished {
  recovered: Delivery[];
  live: Delivery[];
}

export class RoomLedger {
  readonly #rooms = new Map<string, RoomState>();

  /** The rooms joined, in the order joined. */
  rooms(): string[] {
    return [...this.#rooms].filter(([, s]) => s.joined).map(([room]) => room);
  }

  /** Whether `room` is joined (or being joined). */
  has(room: string): boolean {
    return this.#rooms.has(room);
  }

  /** Whether `room` is joined. */
  joined(room: string): boolean {
    return this.#rooms.get(room)?.joined ?? false;
  }

  /** The last offset of `room` accounted for: `null` when unknown, `undefined` when the
   * room is not joined. */
  last(room: string): number | null | undefined {
    return this.#rooms.get(room)?.last;
  }

  /** Whether a join or rejoin of `room` is under way. */
  pending(room: string): boolean {
    return this.#rooms.get(room)?.pending ?? false;
  }

  /** A first join of `room` is about to be sent: its live events wait from now on. */
  startJoin(room: string): void {
    if (!this.#rooms.has(room)) {
      this.#rooms.set(room, { joined: false, last: null, own: new Set(), pending: true, queue: [] });
    }
  }

  /** A rejoin of `room` is about to be sent; returns the offset to recover from (`null`:
   * unknown). */
  startRejoin(room: string): number | null {
    const state = this.#rooms.get(room);
    if (!state) return null;
    state.pending = true;
    return state.last;
  }

  /** The (re)join of `room` from offset `since` was answered: `recovered` and the
   * messages after `since` the server handed over. */
  finish(
    room: string,
    since: number | null,
    recovered: boolean,
    messages: readonly ChatMessage[],
  ): Finished {
    const state = this.#rooms.get(room);
    if (!state) return { recovered: [], live: [] };
    state.joined = true;
    const out: Finished = { recovered: [], live: [] };
    if (recovered && since !== null) {
      if (state.last === null || since > state.last) state.last = since;
      for (const message of messages) {
        const d = this.#accept(state, message, true);
        if (d) out.recovered.push(d);
      }
    } else {
      // A gap may lie here: the next message is the new baseline.
      state.last = null;
      state.own.clear();
    }
    out.live = this.#release(state);
    return out;
  }

  /** A join of `room` failed for good: forgets the room; returns what waited. */
  abandon(room: string): Delivery[] {
    const state = this.#rooms.get(room);
    if (!state) return [];
    this.#rooms.delete(room);
    return state.queue.map(passThrough);
  }

  /** Forgets `room` (left, or removed by the backend). */
  remove(room: string): void {
    this.#rooms.delete(room);
  }

  /** Forgets every room. */
  clear(): void {
    this.#rooms.clear();
  }

  /** A live event arrived: what to hand to the application now (nothing while the room's
   * (re)join is under way, nothing for a message already accounted for). */
  live(event: RoomEvent): Delivery[] {
    const room = event.kind === "deleted" ? event.deleted.room : event.message.room;
    const state = room === undefined ? undefined : this.#rooms.get(room);
    if (!state) return [passThrough(event)];
    if (state.pending) {
      state.queue.push(event);
      return [];
    }
    const d = this.#process(state, event);
    return d ? [d] : [];
  }

  /** The client's own send to `room` was stored at `offset`. */
  own(room: string, offset: number): void {
    const state = this.#rooms.get(room);
    if (!state || (state.last !== null && offset <= state.last)) return;
    if (state.last !== null && offset === state.last + 1) {
      state.last = offset;
      absorb(state);
    } else {
      state.own.add(offset);
    }
  }

  #release(state: RoomState): Delivery[] {
    state.pending = false;
    const queued = state.queue;
    state.queue = [];
    const out: Delivery[] = [];
    for (const event of queued) {
      const d = this.#process(state, event);
      if (d) out.push(d);
    }
    return out;
  }

  #process(state: RoomState, event: RoomEvent): Delivery | null {
    return event.kind === "message" ? this.#accept(state, event.message, false) : passThrough(event);
  }

  #accept(state: RoomState, message: ChatMessage, recovered: boolean): Delivery | null {
    const offset = message.offset;
    if (typeof offset !== "number") return { kind: "message", message, recovered };
    if (state.last !== null && offset <= state.last) return null;
    const mine = state.own.delete(offset);
    state.last = offset;
    for (const o of state.own) if (o <= offset) state.own.delete(o);
    absorb(state);
    // One of the client's own sends (recovered after its ack): the app has its ack.
    return mine ? null : { kind: "message", message, recovered };
  }
}

/** Moves `last` over the client's own sends that follow it. */
function absorb(state: RoomState): void {
  while (state.last !== null && state.own.delete(state.last + 1)) state.last += 1;
}

function passThrough(event: RoomEvent): Delivery {
  return event.kind === "message" ? { kind: "message", message: event.message, recovered: false } : event;
}
