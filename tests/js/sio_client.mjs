// A real socket.io-client driven line by line by the Rust tests.
// usage: node sio_client.mjs <url[,fallback-url...]> <transports comma-separated> [options-json]
// options-json is merged into the io() options, e.g. {"auth":{"token":"..."},"extraHeaders":{...}}
// stdin  (JSON lines): {"op":"emit","event":E,"args":[...],"ack":N?} | {"op":"close"}
//                      | {"op":"emit_json","event":E,"json":"<one argument as JSON text>"}
// stdout (JSON lines): {"type":"connect","id","transport"} | {"type":"event","event","args"}
//                      | {"type":"ack","ack":N,"args"} | {"type":"ack_timeout","ack":N}
//                      | {"type":"disconnect","reason"} | {"type":"connect_error","message","data"}
//                      | {"type":"upgrade","transport"} | {"type":"rejoined","id","url","rooms"}
// When the connection is lost and fallback URLs remain, the client connects to the next
// one and joins again every room it had joined, as a chat app behind a load balancer does.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [urlList, transports = "websocket", options] = process.argv.slice(2);
const urls = urlList.split(",");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const rooms = new Set();
let closing = false;
let socket;

function open(index) {
  const s = io(urls[index], {
    transports: transports.split(","),
    reconnection: false,
    timeout: 5000,
    forceNew: true,
    ...(options ? JSON.parse(options) : {}),
  });
  s.on("connect", async () => {
    if (index === 0) {
      out({ type: "connect", id: s.id, transport: s.io.engine.transport.name });
      return;
    }
    for (const room of rooms) {
      const ack = await s.timeout(10000).emitWithAck("room:join", { room }).catch(() => null);
      if (!ack || ack.status !== "ok") out({ type: "rejoin_failed", room, ack });
    }
    out({ type: "rejoined", id: s.id, url: urls[index], rooms: [...rooms] });
  });
  s.on("connect_error", (err) => out({ type: "connect_error", message: err.message, data: err.data ?? null }));
  s.on("disconnect", (reason) => {
    out({ type: "disconnect", reason });
    if (!closing && reason !== "io client disconnect" && index + 1 < urls.length) {
      socket = open(index + 1);
    }
  });
  s.onAny((event, ...args) => out({ type: "event", event, args }));
  s.io.on("open", () => {
    s.io.engine.on("upgrade", (t) => out({ type: "upgrade", transport: t.name }));
  });
  return s;
}

socket = open(0);

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "emit_json") {
    // The argument arrives as JSON text, for shapes the Rust side cannot build as values.
    socket.emit(cmd.event, JSON.parse(cmd.json));
  } else if (cmd.op === "emit") {
    if (cmd.ack === undefined || cmd.ack === null) {
      socket.emit(cmd.event, ...cmd.args);
    } else {
      socket.timeout(10000).emit(cmd.event, ...cmd.args, (err, ...args) => {
        if (!err && cmd.event === "room:join" && args[0]?.status === "ok") rooms.add(args[0].room);
        if (!err && cmd.event === "room:leave" && args[0]?.status === "ok") rooms.delete(args[0].room);
        out(err ? { type: "ack_timeout", ack: cmd.ack } : { type: "ack", ack: cmd.ack, args });
      });
    }
  } else if (cmd.op === "close") {
    closing = true;
    socket.disconnect();
    setTimeout(() => process.exit(0), 50);
  }
});
rl.on("close", () => { closing = true; socket.disconnect(); process.exit(0); });
