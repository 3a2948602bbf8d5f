// ChatwireError: every failure the client reports, with the server's error code
// (docs/errors.md) or one of the client's own.

import type { ErrorBody } from "./types.js";

/** The codes the server answers with (docs/errors.md). */
export type ServerErrorCode =
  | "AUTH_FAILED"
  | "FORBIDDEN"
  | "RATE_LIMITED"
  | "INVALID_PAYLOAD"
  | "CHANNEL_ERROR"
  | "MESSAGE_TOO_LARGE"
  | "UNAVAILABLE"
  | "CONFLICT"
  | "NOT_FOUND"
  | "INTERNAL";

/** The client's own codes: no answer in time (`TIMEOUT`), the connection was lost before
 * the answer came (`DISCONNECTED`: a send may or may not have been stored; if it was,
 * it comes back through `message:new` on the next rejoin), the client was closed
 * (`CLOSED`), or no server could be reached (`CONNECT_FAILED`). */
export type ClientErrorCode = "TIMEOUT" | "DISCONNECTED" | "CLOSED" | "CONNECT_FAILED";

export type ErrorCode = ServerErrorCode | ClientErrorCode;

const SERVER_CODES: ReadonlySet<string> = new Set<ServerErrorCode>([
  "AUTH_FAILED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "INVALID_PAYLOAD",
  "CHANNEL_ERROR",
  "MESSAGE_TOO_LARGE",
  "UNAVAILABLE",
  "CONFLICT",
  "NOT_FOUND",
  "INTERNAL",
]);

/** Codes after which the same request may succeed later. */
const RETRYABLE: ReadonlySet<string> = new Set<ErrorCode>([
  "RATE_LIMITED",
  "UNAVAILABLE",
  "CONFLICT",
  "INTERNAL",
  "TIMEOUT",
  "DISCONNECTED",
  "CONNECT_FAILED",
]);

export interface ChatwireErrorOptions {
  retryAfterMs?: number | undefined;
  /** The client event that failed, e.g. `"message:send"`. */
  event?: string | undefined;
  cause?: unknown;
}

/** A failed call or connection: `code` is the server's (docs/errors.md) or the client's
 * own; `retryAfterMs` comes with `RATE_LIMITED` and `UNAVAILABLE`. */
export class ChatwireError extends Error {
  override readonly name = "ChatwireError";
  readonly code: ErrorCode;
  readonly retryAfterMs: number | undefined;
  readonly event: string | undefined;

  constructor(code: ErrorCode, message: string, options: ChatwireErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options.retryAfterMs;
    this.event = options.event;
  }

  /** Whether retrying the same request later may succeed (after `retryAfterMs` when
   * given). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /** The error an ack or an `error` event carried. A body of another shape is reported
   * as `INTERNAL`. */
  static fromBody(body: unknown, event?: string): ChatwireError {
    const b = (typeof body === "object" && body !== null ? body : {}) as Partial<ErrorBody>;
    const code = typeof b.code === "string" && SERVER_CODES.has(b.code) ? b.code : "INTERNAL";
    const message =
      typeof b.message === "string" ? b.message : `unexpected answer: ${JSON.stringify(body)}`;
    const retryAfterMs = typeof b.retry_after_ms === "number" ? b.retry_after_ms : undefined;
    return new ChatwireError(code as ErrorCode, message, { retryAfterMs, event });
  }

  /** A refused socket.io connection: the server's `connect_error` message is
   * `"<CODE>: <text>"`. */
  static fromConnectError(err: Error): ChatwireError {
    const match = /^([A-Z_]+): ?(.*)$/s.exec(err.message);
    if (match && SERVER_CODES.has(match[1]!)) {
      const data = (err as Error & { data?: { retry_after_ms?: unknown } }).data;
      const retryAfterMs =
        typeof data?.retry_after_ms === "number" ? data.retry_after_ms : undefined;
      return new ChatwireError(match[1] as ServerErrorCode, match[2]!, {
        retryAfterMs,
        cause: err,
      });
    }
    return new ChatwireError("CONNECT_FAILED", err.message, { cause: err });
  }
}

/** Whether `e` is a {@link ChatwireError} (of `code`, when given). */
export function isChatwireError(e: unknown, code?: ErrorCode): e is ChatwireError {
  return e instanceof ChatwireError && (code === undefined || e.code === code);
}
