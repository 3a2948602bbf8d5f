// End-to-end test of the demo page in headless Chromium (Debian's package), driven by
// playwright-core. At desktop size, Alice and Bob (separate browser contexts, so each
// has its own remembered name) pick their names and join "demo": they see each other
// online and typing, chat under their names, get a thread reply, a reaction, a receipt
// ("Seen by Bob"), an unread badge while another room is shown, and a search result;
// Carol joins later, sees the history, pages back in a long room and switches rooms.
// At 390x844, Dana chats without horizontal scrolling, with the rooms and the thread as
// full-width overlays; Erin, on a server allowing one message a minute, keeps her
// rate-limited message in the input. Every step waits on the page (no fixed sleeps).
// Writes demo.png (Alice, 1280x800) and demo-phone.png (Dana) into the screenshot
// folder, and on a failure failed-<user>.png into E2E_FAILURE_DIR (default: the same).
// usage: node e2e_demo.mjs <server url> <rate-limited server url> <screenshot folder>
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";
import { io } from "socket.io-client";

const [url, limitedUrl, shots] = process.argv.slice(2);
if (!shots) {
  console.error("usage: node e2e_demo.mjs <server url> <rate-limited server url> <screenshot folder>");
  process.exit(2);
}
const failures = process.env.E2E_FAILURE_DIR ?? shots;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const pages = new Map();
const pageErrors = [];
let step = "start";

/** A new user in a context of their own: picks `name` and `room` on the first screen. */
async function user(name, room, { size = DESKTOP, at = url } = {}) {
  const phone = size === PHONE;
  const context = await browser.newContext({ viewport: size, isMobile: phone, hasTouch: phone });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (e) => pageErrors.push(`${name}: ${e.message}`));
  pages.set(name, page);
  await page.goto(at);
  await page.waitForSelector("#welcome:not([hidden]) #hint:has-text('Pick a name and a room')");
  await page.fill("#name", name);
  await page.fill("#start-room", room);
  await page.click("#start");
  await page.waitForSelector("#welcome", { state: "hidden" });
  await page.waitForSelector(`#rooms li.active[data-room="${room}"]`, { state: "attached" });
  await page.waitForSelector("#text:not([disabled])");
  return page;
}

/** The message of the active room whose text is `text`. */
const message = (page, text) =>
  page.locator("#messages li.msg").filter({ has: page.getByText(text, { exact: true }) });

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await message(page, text).and(page.locator(".mine:not(.pending)")).waitFor();
}

async function joinRoom(page, room) {
  await page.fill("#join-room", room);
  await page.press("#join-room", "Enter");
  await page.waitForSelector(`#rooms li.active[data-room="${room}"]`, { state: "attached" });
}

async function expectNone(locator, what) {
  const n = await locator.count();
  if (n !== 0) throw new Error(`${what} (${n} found)`);
}

/** The history of a long room, sent by another client. */
async function seed(room, count) {
  const socket = io(url, { transports: ["websocket"], auth: { name: "Archivist" } });
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    await socket.timeout(10_000).emitWithAck("room:join", { room });
    for (let i = 1; i <= count; i++) {
      const ack = await socket.timeout(10_000).emitWithAck("message:send", { room, content: `archived message ${i}` });
      if (ack.status !== "ok") throw new Error(`seeding ${room}: ${JSON.stringify(ack)}`);
    }
  } finally {
    socket.close();
  }
}

/** Fails when the page scrolls sideways. */
async function noSideScroll(page, what) {
  const width = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth));
  if (width > PHONE.width) throw new Error(`${what}: the page is ${width} px wide at ${PHONE.width} px`);
}

try {
  step = "Alice and Bob pick their names and join demo";
  const alice = await user("Alice", "demo");
  const bob = await user("Bob", "demo");

  step = "each sees the other online, by name";
  await alice.locator("#online li").getByText("Bob", { exact: true }).waitFor();
  await bob.locator("#online li").getByText("Alice", { exact: true }).waitFor();
  await alice.locator("#online li").getByText("Alice (you)", { exact: true }).waitFor();

  step = "typing shows on the other page";
  await bob.locator("#text").pressSequentially("hi");
  await alice.waitForSelector("#typing:has-text('Bob is typing')");
  await bob.fill("#text", "");

  step = "Alice's message reaches Bob under her name; hers is marked as her own";
  await send(alice, "hello from alice");
  await message(bob, "hello from alice").locator(".from").getByText("Alice", { exact: true }).waitFor();
  await expectNone(message(bob, "hello from alice").and(bob.locator(".mine")), "Alice's message is marked as Bob's own");
  await message(alice, "hello from alice").locator(".you").waitFor();
  await bob.fill("#text", "hello back from bob");
  await bob.click("#send");
  await message(alice, "hello back from bob").locator(".from").getByText("Bob", { exact: true }).waitFor();

  step = "Carol, joining later, sees the history";
  await seed("archive", 35);
  const carol = await user("Carol", "demo");
  await message(carol, "hello from alice").waitFor();
  await message(carol, "hello back from bob").waitFor();

  step = "Carol joins a long room: its latest page, older ones on demand, only its messages";
  await joinRoom(carol, "archive");
  await message(carol, "archived message 35").waitFor();
  await expectNone(message(carol, "hello from alice"), "demo's messages stayed after joining archive");
  await expectNone(message(carol, "archived message 1"), "the whole history came at once");
  await carol.click("#older");
  await message(carol, "archived message 1").waitFor();
  await carol.waitForSelector("#older", { state: "hidden" });

  step = "Carol switches back to demo: only demo's messages";
  await carol.click('#rooms button.room[data-room="demo"]');
  await message(carol, "hello back from bob").waitFor();
  await expectNone(message(carol, "archived message 35"), "archive's messages stayed after switching");
  await carol.context().close();
  pages.delete("Carol");

  step = "Bob shows another room: a badge counts demo's new message, and Alice sees no receipt";
  await joinRoom(bob, "elsewhere");
  await bob.waitForSelector('#rooms li[data-room="demo"]');
  await send(alice, "are you there, bob?");
  await bob.waitForSelector('#rooms li[data-room="demo"] [data-unread="1"]');
  await expectNone(message(bob, "are you there, bob?"), "demo's message shows in elsewhere");
  await expectNone(message(alice, "are you there, bob?").locator("[data-seen]"), "a receipt before Bob saw the message");

  step = "Bob switches to demo: the badge clears and Alice sees the receipt";
  await bob.click('#rooms button.room[data-room="demo"]');
  await message(bob, "are you there, bob?").waitFor();
  await bob.waitForSelector('#rooms li[data-room="demo"] [data-unread]', { state: "detached" });
  await message(alice, "are you there, bob?").locator("[data-seen]").getByText("Seen by Bob", { exact: true }).waitFor();

  step = "Bob replies in a thread; Alice sees the count and the reply";
  await message(bob, "hello from alice").locator('[data-action="reply"]').click();
  await bob.locator("#thread-root").getByText("hello from alice", { exact: true }).waitFor();
  await bob.fill("#thread-text", "a reply from bob");
  await bob.press("#thread-text", "Enter");
  await bob.locator("#thread-replies li").getByText("a reply from bob", { exact: true }).waitFor();
  await message(alice, "hello from alice").locator('[data-replies="1"]').getByText("1 reply").waitFor();
  await message(alice, "hello from alice").locator("[data-replies]").click();
  await alice.locator("#thread-replies li").getByText("a reply from bob", { exact: true }).waitFor();

  step = "a reply to an open thread arrives live";
  await bob.fill("#thread-text", "and one more");
  await bob.press("#thread-text", "Enter");
  await alice.locator("#thread-replies li").getByText("and one more", { exact: true }).waitFor();
  await message(alice, "hello from alice").locator('[data-replies="2"]').getByText("2 replies").waitFor();

  step = "Bob reacts 👍; Alice sees the count, and adds hers";
  await message(bob, "hello from alice").locator('.actions [data-react="👍"]').click();
  await message(alice, "hello from alice").locator('.chip[data-emoji="👍"][data-count="1"]').waitFor();
  await message(alice, "hello from alice").locator('.chip[data-emoji="👍"]').click();
  await message(bob, "hello from alice").locator('.chip[data-emoji="👍"][data-count="2"].mine').waitFor();
  await message(alice, "hello from alice").locator('.chip[data-emoji="👍"][data-count="2"].mine').waitFor();

  step = "search finds messages, newest first";
  await alice.click("#search-toggle");
  await alice.fill("#search-q", "hello");
  await alice.press("#search-q", "Enter");
  await alice.locator("#search-results li").getByText("hello from alice", { exact: true }).waitFor();
  const found = await alice.locator("#search-results li .text").allTextContents();
  if (found[0] !== "hello back from bob" || !found.includes("hello from alice")) {
    throw new Error(`search results, newest first: ${JSON.stringify(found)}`);
  }

  step = "the desktop screenshot: a thread open, a badge on another room";
  await send(bob, "yes! I replied in the thread");
  await message(alice, "yes! I replied in the thread").waitFor();
  await joinRoom(alice, "random");
  await alice.click('#rooms button.room[data-room="demo"]');
  await joinRoom(bob, "random");
  await send(bob, "anyone up for lunch?");
  await alice.waitForSelector('#rooms li[data-room="random"] [data-unread="1"]');
  await message(alice, "hello from alice").locator("[data-replies]").click();
  await alice.locator("#thread-replies li").getByText("and one more", { exact: true }).waitFor();
  await alice.mouse.move(0, 0);
  await alice.evaluate(() => document.activeElement?.blur());
  await alice.screenshot({ path: join(shots, "demo.png") });

  step = "the name is remembered";
  const again = await alice.context().newPage();
  await again.goto(url);
  const remembered = await again.inputValue("#name");
  if (remembered !== "Alice") throw new Error(`the name field says ${JSON.stringify(remembered)}, not "Alice"`);
  await again.close();

  step = "Dana, on a phone, joins and chats without scrolling sideways";
  const dana = await user("Dana", "demo", { size: PHONE });
  await message(dana, "are you there, bob?").waitFor();
  await send(dana, "hi from my phone");
  await message(alice, "hi from my phone").locator(".from").getByText("Dana", { exact: true }).waitFor();
  await noSideScroll(dana, "the chat");
  const box = await dana.locator("#text").boundingBox();
  if (!box || box.y + box.height > PHONE.height) throw new Error(`the input is out of view: ${JSON.stringify(box)}`);

  step = "on the phone, the rooms and the thread cover the page";
  await dana.click("#menu");
  const rooms = await dana.locator("#sidebar").boundingBox();
  if (!rooms || rooms.width < PHONE.width - 1) throw new Error(`the rooms are ${rooms?.width} px wide`);
  await noSideScroll(dana, "the rooms");
  await dana.click('#rooms button.room[data-room="demo"]');
  await dana.waitForSelector("#sidebar", { state: "hidden" });
  await message(dana, "hello from alice").locator('[data-replies="2"]').click();
  await dana.locator("#thread-replies li").getByText("and one more", { exact: true }).waitFor();
  const panel = await dana.locator("#thread-panel").boundingBox();
  if (!panel || panel.width < PHONE.width - 1) throw new Error(`the thread is ${panel?.width} px wide`);
  await dana.locator("#thread-text").waitFor();
  await noSideScroll(dana, "the thread");
  await dana.click("#thread-panel [data-close]");
  await dana.waitForSelector("#thread-panel", { state: "hidden" });
  await dana.screenshot({ path: join(shots, "demo-phone.png") });

  step = "Erin's rate-limited message stays in the input, with when to retry";
  const erin = await user("Erin", "limits", { size: PHONE, at: limitedUrl });
  await send(erin, "my one message a minute");
  await erin.fill("#text", "and a second one");
  await erin.press("#text", "Enter");
  await erin.waitForSelector("#notice:not([hidden]):has-text('sending too fast'):has-text('Try again in')");
  const kept = await erin.inputValue("#text");
  if (kept !== "and a second one") throw new Error(`the input says ${JSON.stringify(kept)} after the refused send`);
  await expectNone(message(erin, "and a second one"), "the refused message shows as sent");
  await noSideScroll(erin, "the notice");

  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  console.log(`ok: the demo page works at desktop and phone size; screenshots in ${shots}`);
} catch (e) {
  console.error(`e2e failed at "${step}": ${e.message}`);
  if (pageErrors.length) console.error(`errors in the page: ${pageErrors.join("; ")}`);
  mkdirSync(failures, { recursive: true });
  for (const [name, page] of pages) {
    await page.screenshot({ path: join(failures, `failed-${name.toLowerCase()}.png`) }).catch(() => {});
  }
  await browser.close();
  process.exit(1);
}
await browser.close();
