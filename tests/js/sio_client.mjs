// A real socket.io-client driven line by line by the Rust tests.
// usage: node sio_client.mjs <url> <transports comma-separated> [auth-json]
// stdin  (JSON lines): {"op":"emit","event":E,"args":[...],"ack":N?} | {"op":"close"}
// stdout (JSON lines): {"type":"connect","id"} | {"type":"event","event","args"}
//                      | {"type":"ack","ack":N,"args"} | {"type":"disconnect","reason"}
//                      | {"type":"connect_error","message","data"} | {"type":"upgrade","transport"}
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [url, transports = "websocket", auth] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const socket = io(url, {
  transports: transports.split(","),
  reconnection: false,
  timeout: 5000,
  auth: auth ? JSON.parse(auth) : undefined,
});

socket.on("connect", () => out({ type: "connect", id: socket.id, transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => out({ type: "connect_error", message: err.message, data: err.data ?? null }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.onAny((event, ...args) => out({ type: "event", event, args }));
socket.io.on("open", () => {
  socket.io.engine.on("upgrade", (t) => out({ type: "upgrade", transport: t.name }));
});

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "emit") {
    if (cmd.ack === undefined || cmd.ack === null) {
      socket.emit(cmd.event, ...cmd.args);
    } else {
      socket.timeout(10000).emit(cmd.event, ...cmd.args, (err, ...args) => {
        out(err ? { type: "ack_timeout", ack: cmd.ack } : { type: "ack", ack: cmd.ack, args });
      });
    }
  } else if (cmd.op === "close") {
    socket.disconnect();
    setTimeout(() => process.exit(0), 50);
  }
});
rl.on("close", () => { socket.disconnect(); process.exit(0); });
