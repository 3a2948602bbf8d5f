// Shared by the tests: the servers they run against (from the environment), clients,
// and bounded waits for events.
import { createServer } from "node:net";
import { createHmac } from "node:crypto";

import { ChatwireClient } from "../dist/index.js";

/** The server most tests use. */
export const URL = process.env.CHATWIRE_URL;
/** Several pods of one chat, comma-separated. */
export const URLS = process.env.CHATWIRE_URLS?.split(",").filter(Boolean);
/** A server with RATE_MESSAGES_PER_MIN=1. */
export const LIMITED_URL = process.env.CHATWIRE_LIMITED_URL;
/** A server with AUTH_ENABLED=true and JWT_SECRET=$CHATWIRE_JWT_SECRET. */
export const AUTH_URL = process.env.CHATWIRE_AUTH_URL;
export const JWT_SECRET = process.env.CHATWIRE_JWT_SECRET;
/** A server API key of the server at CHATWIRE_AUTH_URL. */
export const API_KEY = process.env.CHATWIRE_API_KEY;

/** The test options that skip, saying why, when `value` is not set. */
export function needs(value, variable) {
  return value ? {} : { skip: `${variable} is not set (tests/client_package.rs sets it; or point it at a chatwire server)` };
}

/** The longest any one expected event may take. */
export const WAIT_MS = 10_000;

/** A fresh room name. */
export function room(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A client over WebSocket, once ready. */
export async function open(options = {}) {
  const client = new ChatwireClient({ url: URL, transports: ["websocket"], ...options });
  await client.ready();
  return client;
}

/** The next `event` of `client` whose arguments satisfy `pred`, within `ms`. */
export function nextEvent(client, event, pred = () => true, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const off = client.on(event, (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

/** Every `event` of `client` from now on, as argument arrays. */
export function collect(client, event, pred = () => true) {
  const seen = [];
  client.on(event, (...args) => {
    if (pred(...args)) seen.push(args);
  });
  return seen;
}

/** A loopback URL where nothing listens. */
export async function deadUrl() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** An HS256 JWT for `sub`, valid for an hour. */
export function token(secret, sub, name) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, name, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** Calls the server API of CHATWIRE_AUTH_URL (docs/backend.md); its JSON answer. */
export async function serverApi(path, body) {
  const res = await fetch(`${AUTH_URL}/api/server${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
