// The real @socket.io/redis-emitter, driven by chatwire's Rust tests.
// usage: node emitter.mjs <redis-url> <ops-json>
// ops: [{"op":"emit","to":[rooms]?,"except":[rooms]?,"volatile":bool?,"event":E,"args":[...]}
//       | {"op":"socketsJoin"|"socketsLeave","in":[rooms]?,"rooms":[...]}
//       | {"op":"disconnectSockets","in":[rooms]?,"close":bool?}]
// Every publish has reached Redis when the process exits 0.
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";

const [url, opsJson] = process.argv.slice(2);
const client = createClient({ url });
client.on("error", (err) => { console.error(err); process.exit(1); });
await client.connect();
const emitter = new Emitter(client);

function target(op, rooms) {
  let t = emitter;
  for (const room of rooms ?? []) t = t.to(room);
  for (const room of op.except ?? []) t = t.except(room);
  return t;
}

for (const op of JSON.parse(opsJson)) {
  if (op.op === "emit") {
    const t = op.volatile ? target(op, op.to).volatile : target(op, op.to);
    t.emit(op.event, ...(op.args ?? []));
  } else if (op.op === "socketsJoin") {
    target(op, op.in).socketsJoin(op.rooms);
  } else if (op.op === "socketsLeave") {
    target(op, op.in).socketsLeave(op.rooms);
  } else if (op.op === "disconnectSockets") {
    target(op, op.in).disconnectSockets(op.close ?? false);
  } else {
    throw new Error(`unknown op ${op.op}`);
  }
}
// QUIT answers after every command sent before it.
await client.quit();
