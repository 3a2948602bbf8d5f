#!/usr/bin/env node
// An application on @chatwire/client, driven line by line by tests/client_package.rs:
// it prints what the application receives, and runs the calls it is told to.
// usage: node recovery-driver.mjs '<ChatwireClient options as JSON>'
// stdin  (JSON lines): {"op":"join","room":R,"since":N?,"ref":K} | {"op":"leave","room":R,"ref":K}
//                      | {"op":"send","room":R|null,"content":C,"ref":K}
//                      | {"op":"history","room":R,"before":N?,"limit":N?,"ref":K} | {"op":"close"}
// stdout (JSON lines): {"type":"message","room","offset","id","from","content","recovered"}
//                      | {"type":"rejoined","room","recovered","since","missed","url"}
//                      | {"type":"rejoin_failed","room","code","willRetry"}
//                      | {"type":"connect","url","id"} | {"type":"disconnect","url","reason","willReconnect"}
//                      | {"type":"connect_error","url","code","willRetry"}
//                      | {"type":"reply","ref":K,"ok":true,"value":...}
//                      | {"type":"reply","ref":K,"ok":false,"code","message","retryAfterMs"}
import { createInterface } from "node:readline";

import { ChatwireClient } from "../dist/index.js";

const out = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const client = new ChatwireClient(JSON.parse(process.argv[2] ?? "{}"));

client.on("message:new", (m, { recovered }) =>
  out({
    type: "message",
    room: m.room ?? null,
    offset: m.offset,
    id: m.id,
    from: m.from,
    content: m.data.content ?? null,
    recovered,
  }),
);
client.on("rejoined", (info) => out({ type: "rejoined", ...info }));
client.on("rejoin:failed", ({ room, error, willRetry }) =>
  out({ type: "rejoin_failed", room, code: error.code, willRetry }),
);
client.on("connect", (info) => out({ type: "connect", ...info }));
client.on("disconnect", (info) => out({ type: "disconnect", ...info }));
client.on("connect_error", ({ url, error, willRetry }) =>
  out({ type: "connect_error", url, code: error.code, message: error.message, willRetry }),
);
client.on("error", (error) => out({ type: "error", code: error.code, message: error.message }));

const calls = {
  join: (c) => client.join(c.room, c.since === undefined ? {} : { since: c.since }),
  leave: (c) => client.leave(c.room),
  send: (c) => client.send(c.room, c.content),
  history: (c) => client.history(c.room, { before: c.before, limit: c.limit }),
};

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "close") {
    client.close();
    process.exit(0);
  }
  const call = calls[cmd.op];
  if (!call) {
    out({ type: "reply", ref: cmd.ref, ok: false, code: "UNKNOWN_OP", message: cmd.op });
    return;
  }
  call(cmd).then(
    (value) => out({ type: "reply", ref: cmd.ref, ok: true, value: value ?? null }),
    (err) =>
      out({
        type: "reply",
        ref: cmd.ref,
        ok: false,
        code: err.code ?? "EXCEPTION",
        message: err.message,
        retryAfterMs: err.retryAfterMs ?? null,
      }),
  );
});
rl.on("close", () => {
  client.close();
  process.exit(0);
});
