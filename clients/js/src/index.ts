// @chatwire/client: a typed chatwire client over the official socket.io-client.

export { ChatwireClient } from "./client.js";
export type { ChatwireClientOptions, ChatwireEvents, RejoinInfo } from "./client.js";
export { ChatwireError, isChatwireError } from "./errors.js";
export type { ClientErrorCode, ErrorCode, ServerErrorCode } from "./errors.js";
export { RoomLedger } from "./ledger.js";
export type { Delivery, Finished, RoomEvent } from "./ledger.js";
export { TypingIndicator, TypingTracker } from "./typing.js";
export type { TypingIndicatorOptions } from "./typing.js";
export type { Handler } from "./emitter.js";
export type * from "./types.js";
