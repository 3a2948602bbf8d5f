#!/usr/bin/env node
// The fan-out scenario with the real socket.io-client (WebSocket transport): `size`
// receivers join one room, then one sender sends `rate` messages/s for `secs` seconds,
// each carrying its send time ("t<us>-0"); receivers parse each event as applications do
// and record its latency. Prints "ready" once every receiver joined (bench/profile
// measures the server from then on), then one JSON line of figures.
// usage: node fanout.mjs <url> <size> <rate> <secs>
import { io } from "socket.io-client";

const [url, size = "200", rate = "100", secs = "8"] = process.argv.slice(2);
const n = Number(size);
const room = "bench0";
const nowUs = () => Number(process.hrtime.bigint() / 1000n) + epochOffsetUs;
const epochOffsetUs = Date.now() * 1000 - Number(process.hrtime.bigint() / 1000n);
const latencies = [];
let delivered = 0;

function open() {
  return new Promise((resolve, reject) => {
    const s = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
    s.once("connect_error", reject);
    s.once("connect", async () => {
      const ack = await s.timeout(10_000).emitWithAck("room:join", { room });
      if (ack.status !== "ok") reject(new Error(JSON.stringify(ack)));
      else resolve(s);
    });
  });
}

const receivers = [];
for (let i = 0; i < n; i += 50) {
  const batch = await Promise.all(Array.from({ length: Math.min(50, n - i) }, open));
  receivers.push(...batch);
}
for (const s of receivers) {
  s.on("message:new", (m) => {
    const sent = Number(m.data.content.slice(1).split("-")[0]);
    delivered += 1;
    latencies.push(nowUs() - sent);
  });
}
const sender = await open();
console.log("ready");
await new Promise((r) => setTimeout(r, 500));
const started = Date.now();
let sent = 0;
const total = Number(rate) * Number(secs);
await new Promise((resolve) => {
  const every = 1000 / Number(rate);
  const tick = () => {
    const due = Math.min(total, Math.floor((Date.now() - started) / every) + 1);
    while (sent < due) {
      sender.emit("message:send", { room, content: `t${nowUs()}-0` });
      sent += 1;
    }
    if (sent >= total) resolve();
    else setTimeout(tick, Math.max(1, every / 2));
  };
  tick();
});
const sendSecs = (Date.now() - started) / 1000;
// Wait for the last deliveries (at most 5 s).
const expected = sent * n;
const deadline = Date.now() + 5000;
while (delivered < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] / 1000 : 0);
console.log(
  JSON.stringify({
    scenario: "fanout-sio-client", receivers: n, sent, delivered, expected,
    delivered_per_s: delivered / sendSecs, loss_pct: expected ? (100 * (expected - delivered)) / expected : 0,
    p50_ms: q(0.5), p99_ms: q(0.99),
  }),
);
for (const s of [...receivers, sender]) s.close();
process.exit(0);
