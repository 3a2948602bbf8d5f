#!/usr/bin/env node
// Clients on @chatwire/client chatting in one room through a load balancer, driven by
// tests/load_balancer.rs.
// usage: node lb-driver.mjs '{"url","room","clients":[[transports...],...],"sendEveryMs"}'
// stdin  (JSON lines): {"op":"send"}   every client sends a message every sendEveryMs
//                      {"op":"pause"}  stop sending; once every send has settled, print
//                                      "paused"
//                      {"op":"report","upTo":N}  once every client has had offset N (or
//                                      after 20 s), print "received"
//                      {"op":"close"}
// stdout (JSON lines): {"type":"ready","transports":[...]}
//                      {"type":"paused","acked":[{client,offset,id}],"failed":[{client,code}],
//                       "disconnects":N,"reconnected":N}
//                      {"type":"received","clients":[{client,transports,messages:[[offset,id]],
//                       own:[[offset,id]]}]}
import { createInterface } from "node:readline";

import { ChatwireClient } from "../dist/index.js";

const options = JSON.parse(process.argv[2] ?? "{}");
const out = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const WAIT_MS = 20_000;

/** Resolves once `check()` holds (checked every 50 ms: the client has no event for a
 * transport upgrade), or rejects after `ms`. */
function until(check, ms, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`not within ${ms} ms: ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

const clients = options.clients.map((transports, index) => {
  const client = new ChatwireClient({
    url: options.url,
    transports,
    reconnectionDelayMs: 100,
    reconnectionDelayMaxMs: 500,
    connectTimeoutMs: 3000,
    ackTimeoutMs: 10_000,
  });
  const state = { index, transports, client, messages: [], own: [], connects: 0, disconnects: 0 };
  client.on("message:new", (m) => state.messages.push([m.offset, m.id]));
  client.on("connect", () => (state.connects += 1));
  client.on("disconnect", () => (state.disconnects += 1));
  return state;
});

const acked = [];
const failed = [];
const inflight = new Set();
let sending = null;
let sequence = 0;

function sendRound() {
  for (const state of clients) {
    const content = `c${state.index}#${(sequence += 1)}`;
    const call = state.client.send(options.room, content).then(
      (ack) => {
        acked.push({ client: state.index, offset: ack.offset, id: ack.id });
        state.own.push([ack.offset, ack.id]);
      },
      (err) => failed.push({ client: state.index, code: err.code ?? "EXCEPTION" }),
    );
    inflight.add(call);
    call.finally(() => inflight.delete(call));
  }
}

async function pause() {
  clearInterval(sending);
  sending = null;
  await Promise.allSettled([...inflight]);
  out({
    type: "paused",
    acked,
    failed,
    disconnects: clients.reduce((n, s) => n + s.disconnects, 0),
    reconnected: clients.reduce((n, s) => n + Math.max(0, s.connects - 1), 0),
  });
}

async function report(newest) {
  const seen = (s) => Math.max(0, ...s.messages.map((m) => m[0]), ...s.own.map((m) => m[0]));
  const caughtUp = () => clients.every((s) => seen(s) >= newest);
  // Checked on every delivery, until all caught up or WAIT_MS passed.
  await new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const off of offs) off();
      resolve();
    };
    const timer = setTimeout(() => {
      process.stderr.write(`lb-driver: not every client had offset ${newest} within ${WAIT_MS} ms\n`);
      done();
    }, WAIT_MS);
    const offs = clients.map((s) => s.client.on("message:new", () => caughtUp() && done()));
    if (caughtUp()) done();
  });
  out({
    type: "received",
    clients: clients.map((s) => ({
      client: s.index,
      transports: s.transports.join("+"),
      messages: s.messages,
      own: s.own,
    })),
  });
}

try {
  await Promise.all(clients.map((s) => s.client.join(options.room)));
  // The upgrading clients move to WebSocket shortly after connecting.
  await until(
    () => clients.every((s) => s.client.transport === s.transports[s.transports.length - 1]),
    WAIT_MS,
    "every client on its last transport",
  );
  out({ type: "ready", transports: clients.map((s) => s.client.transport) });
} catch (err) {
  out({ type: "error", message: err.message, transports: clients.map((s) => s.client.transport) });
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "send" && sending === null) {
    sendRound();
    sending = setInterval(sendRound, options.sendEveryMs);
  } else if (cmd.op === "pause") {
    void pause();
  } else if (cmd.op === "report") {
    void report(cmd.upTo);
  } else if (cmd.op === "close") {
    for (const s of clients) s.client.close();
    process.exit(0);
  }
});
rl.on("close", () => {
  for (const s of clients) s.client.close();
  process.exit(0);
});
