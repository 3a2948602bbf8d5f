// A small typed event emitter (no Node dependency: the package runs in browsers too).

/** Event name → the handler's arguments. */
export type EventMap<E> = { [K in keyof E]: unknown[] };

/** A handler of event `K`. */
export type Handler<E extends EventMap<E>, K extends keyof E> = (...args: E[K]) => void;

type AnyHandler = (...args: unknown[]) => void;

export class TypedEmitter<E extends EventMap<E>> {
  readonly #handlers = new Map<keyof E, Set<AnyHandler>>();

  /** Calls `handler` on every `event`; returns a function that removes it. */
  on<K extends keyof E>(event: K, handler: Handler<E, K>): () => void {
    let set = this.#handlers.get(event);
    if (!set) {
      set = new Set();
      this.#handlers.set(event, set);
    }
    set.add(handler as unknown as AnyHandler);
    return () => this.off(event, handler);
  }

  /** Calls `handler` on the next `event` only. */
  once<K extends keyof E>(event: K, handler: Handler<E, K>): () => void {
    const off = this.on(event, ((...args: E[K]) => {
      off();
      handler(...args);
    }) as Handler<E, K>);
    return off;
  }

  /** Removes `handler` (or every handler of `event` when none is given). */
  off<K extends keyof E>(event: K, handler?: Handler<E, K>): void {
    if (handler === undefined) {
      this.#handlers.delete(event);
      return;
    }
    this.#handlers.get(event)?.delete(handler as unknown as AnyHandler);
  }

  /** How many handlers `event` has. */
  listenerCount(event: keyof E): number {
    return this.#handlers.get(event)?.size ?? 0;
  }

  /** Calls every handler of `event` in the order added. A handler that throws does not
   * stop the others nor the client's bookkeeping: its error is rethrown on its own, as
   * an uncaught exception. */
  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(...(args as unknown[]));
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
