#!/usr/bin/env node
// Terminal chat on @chatwire/client (clients/js), the typed client over the official
// socket.io-client. It joins a room, prints its latest messages, then every new one;
// after a lost connection it comes back (on the same server, or the next of several
// URLs) and prints what it missed while away, once and in order.
// usage: node chat.mjs [url[,url...]=http://localhost:8084] [room=lobby]
// Type a line to send it to the room; "/global <text>" sends to everyone; Ctrl-D quits.
// CHATWIRE_TOKEN, when set, is the JWT sent in the handshake.
import { createInterface } from "node:readline";

import { ChatwireClient } from "@chatwire/client";

const [urls = "http://localhost:8084", room = "lobby"] = process.argv.slice(2);
const client = new ChatwireClient({
  urls: urls.split(","),
  ...(process.env.CHATWIRE_TOKEN ? { token: process.env.CHATWIRE_TOKEN } : {}),
});

const show = (m, note = "") =>
  console.log(`${note}[${m.room ?? "global"} #${m.offset}] ${m.from}: ${m.data.content ?? "(deleted)"}`);

let joined = false;
client.on("connect", async ({ url, id }) => {
  if (joined) return; // A reconnect: the client rejoins by itself.
  joined = true;
  try {
    await client.join(room);
    console.log(`connected as ${id} to ${url}, joined ${room}`);
    const page = await client.history(room, { limit: 10 });
    for (const m of page.messages) show(m, "(earlier) ");
  } catch (err) {
    console.error(`join failed: ${err.code} ${err.message}`);
    process.exit(1);
  }
});
client.on("message:new", (m, { recovered }) => show(m, recovered ? "(missed) " : ""));
client.on("rejoined", ({ room, recovered, missed, url }) =>
  console.log(
    recovered
      ? `back on ${url}: ${room} rejoined, ${missed} missed message(s) shown`
      : `back on ${url}: ${room} rejoined; more was missed than the server keeps`,
  ),
);
client.on("error", (err) => console.error(`error: ${err.code} ${err.message}`));
client.on("connect_error", ({ url, error }) => console.error(`cannot connect to ${url}: ${error.message}`));
client.on("disconnect", ({ reason, willReconnect }) =>
  console.log(`disconnected (${reason})${willReconnect ? ", reconnecting" : ""}`),
);

const rl = createInterface({ input: process.stdin });
const pending = new Set();
rl.on("line", (line) => {
  if (!line.trim()) return;
  const global = line.startsWith("/global ");
  const call = client.send(global ? null : room, global ? line.slice(8) : line).then(
    (ack) => console.log(`sent ${ack.id} (#${ack.offset})`),
    (err) => console.error(`not sent: ${err.code} ${err.message}`),
  );
  pending.add(call);
  call.finally(() => pending.delete(call));
});
rl.on("close", async () => {
  // The last sends get their answers before leaving.
  await Promise.allSettled([...pending]);
  client.close();
  process.exit(0);
});
