#!/usr/bin/env node
// Terminal chat over Socket.IO.
// usage: node chat.mjs [url=http://localhost:8084] [room=lobby]
// Type a line to send it to the room; "/global <text>" sends to everyone; Ctrl-D quits.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [url = "http://localhost:8084", room = "lobby"] = process.argv.slice(2);
const socket = io(url, { transports: ["websocket"] });

socket.on("connect", async () => {
  const ack = await socket.emitWithAck("room:join", { room });
  if (ack.status !== "ok") {
    console.error(`join failed: ${ack.code} ${ack.message}`);
    process.exit(1);
  }
  console.log(`connected as ${socket.id}, joined ${room}`);
});

socket.on("message:new", (msg) => {
  const where = msg.room ?? "global";
  console.log(`[${where}] ${msg.from}: ${msg.data.content}`);
});
socket.on("error", (err) => console.error(`error: ${err.code} ${err.message}`));
socket.on("connect_error", (err) => console.error(`cannot connect: ${err.message}`));
socket.on("disconnect", (reason) => console.log(`disconnected (${reason})`));

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  const global = line.startsWith("/global ");
  const payload = global ? { content: line.slice(8) } : { room, content: line };
  const ack = await socket.timeout(5000).emitWithAck("message:send", payload).catch(() => null);
  if (!ack) console.error("no ack from server");
  else if (ack.status !== "ok") console.error(`not sent: ${ack.code} ${ack.message}`);
  else console.log(`sent ${ack.id}`);
});
rl.on("close", () => {
  // Let the last acks arrive before leaving.
  setTimeout(() => { socket.disconnect(); process.exit(0); }, 300);
});
