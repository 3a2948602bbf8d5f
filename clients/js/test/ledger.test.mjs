// RoomLedger's rule without a server: each message of a room once and in order, live
// events after a pending (re)join's recovered ones, own sends accounted for.
import { test } from "node:test";
import assert from "node:assert/strict";

import { RoomLedger } from "../dist/index.js";

const msg = (offset, room = "r") => ({
  id: `id-${room}-${offset}`,
  type: "chat",
  room,
  from: "someone",
  data: { content: `m${offset}` },
  timestamp: "2026-01-01T00:00:00.000Z",
  offset,
});
const live = (ledger, offset, room = "r") => ledger.live({ kind: "message", message: msg(offset, room) });
const offsets = (deliveries) => deliveries.map((d) => [d.message.offset, d.recovered]);

function joined(since = 0) {
  const ledger = new RoomLedger();
  ledger.startJoin("r");
  assert.deepEqual(ledger.rooms(), [], "not joined until answered");
  ledger.finish("r", since, true, []);
  assert.deepEqual(ledger.rooms(), ["r"]);
  return ledger;
}

test("a message at or below the last offset is dropped", () => {
  const ledger = joined();
  assert.deepEqual(offsets(live(ledger, 1)), [[1, false]]);
  assert.deepEqual(offsets(live(ledger, 2)), [[2, false]]);
  assert.deepEqual(live(ledger, 2), []);
  assert.deepEqual(live(ledger, 1), []);
  assert.equal(ledger.last("r"), 2);
});

test("live events wait while a rejoin is pending, then follow the recovered ones", () => {
  const ledger = joined();
  live(ledger, 1);
  assert.equal(ledger.startRejoin("r"), 1);
  assert.equal(ledger.pending("r"), true);
  assert.deepEqual(live(ledger, 4), [], "queued");
  assert.deepEqual(ledger.live({ kind: "deleted", deleted: { room: "r", id: "id-r-2" } }), []);
  assert.deepEqual(live(ledger, 5), []);
  const done = ledger.finish("r", 1, true, [msg(2), msg(3), msg(4)]);
  assert.deepEqual(offsets(done.recovered), [
    [2, true],
    [3, true],
    [4, true],
  ]);
  assert.deepEqual(
    done.live.map((d) => (d.kind === "message" ? d.message.offset : d.kind)),
    ["deleted", 5],
    "4 came in the recovery: dropped once live",
  );
  assert.equal(ledger.pending("r"), false);
  assert.equal(ledger.last("r"), 5);
});

test("own sends: not delivered back, and an ack ahead of earlier messages loses none", () => {
  const ledger = joined();
  live(ledger, 1);
  ledger.own("r", 3); // acked before 2 arrived
  assert.equal(ledger.last("r"), 1);
  assert.deepEqual(offsets(live(ledger, 2)), [[2, false]]);
  assert.equal(ledger.last("r"), 3, "2, then its own 3");
  ledger.own("r", 4);
  assert.equal(ledger.last("r"), 4);
  // Own sends the rejoin recovers again are not handed back.
  ledger.own("r", 6);
  ledger.startRejoin("r");
  const done = ledger.finish("r", 4, true, [msg(5), msg(6), msg(7)]);
  assert.deepEqual(offsets(done.recovered), [
    [5, true],
    [7, true],
  ]);
  assert.equal(ledger.last("r"), 7);
});

test("recovered:false leaves the offset unknown until the next message", () => {
  const ledger = joined(10);
  ledger.startRejoin("r");
  assert.deepEqual(live(ledger, 3), []);
  const done = ledger.finish("r", 10, false, []);
  assert.deepEqual(done.recovered, []);
  // Offsets from another log (the server's were reset): taken as the new baseline.
  assert.deepEqual(offsets(done.live), [[3, false]]);
  assert.equal(ledger.last("r"), 3);
  ledger.startRejoin("r");
  ledger.finish("r", 3, false, []);
  assert.equal(ledger.last("r"), null);
  assert.equal(ledger.startRejoin("r"), null);
});

test("rooms are apart; other rooms and global messages pass through", () => {
  const ledger = joined();
  ledger.startRejoin("r");
  assert.deepEqual(offsets(live(ledger, 1, "other")), [[1, false]]);
  assert.deepEqual(offsets(ledger.live({ kind: "message", message: { ...msg(9), room: undefined } })), [[9, false]]);
  assert.deepEqual(live(ledger, 1), []);
  assert.deepEqual(offsets(ledger.abandon("r")), [[1, false]], "a failed join hands on what waited");
  assert.deepEqual(ledger.rooms(), []);
});
