// End-to-end test of the demo page in headless Chromium (Debian's package), driven by
// playwright-core: two pages join one room, chat, and see each other online; a third
// joins later and sees the history, then switches rooms and sees only the new one.
// usage: node e2e_demo.mjs <server url> <screenshot path>
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const fail = async (msg) => { console.error(msg); await browser.close(); process.exit(1); };
try {
  const [alice, bob] = [await browser.newPage(), await browser.newPage()];
  for (const page of [alice, bob]) {
    page.setDefaultTimeout(10000);
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected as"));
    await page.fill("#room", "demo");
    await page.click("#join");
    await page.waitForSelector("#text:not([disabled])");
  }
  const idOf = (page) => page.evaluate(() => document.getElementById("status").textContent.replace("connected as ", ""));
  const [aliceId, bobId] = [await idOf(alice), await idOf(bob)];

  // Each sees the other online.
  await alice.waitForSelector(`#online li[data-user="${bobId}"]`);
  await bob.waitForSelector(`#online li[data-user="${aliceId}"]`);

  // Typing shows on the other page.
  await bob.type("#text", "hi");
  await alice.waitForFunction(() => document.getElementById("typing").textContent.includes("typing"));
  await bob.fill("#text", "");

  // Each sees the other's message.
  await alice.fill("#text", "hello from alice");
  await alice.press("#text", "Enter");
  await bob.waitForSelector("#messages li:has-text('hello from alice')");
  await bob.fill("#text", "hello back from bob");
  await bob.click("#send");
  await alice.waitForSelector("#messages li:has-text('hello back from bob')");

  // Own messages are marked as such.
  await alice.waitForSelector("#messages li.mine:has-text('hello from alice')");

  // A page that joins later sees the room's history; another room shows only its own.
  const carol = await browser.newPage();
  carol.setDefaultTimeout(10000);
  await carol.goto(url);
  await carol.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected as"));
  await carol.fill("#room", "demo");
  await carol.click("#join");
  await carol.waitForSelector("#messages li:has-text('hello from alice')");
  await carol.waitForSelector("#messages li:has-text('hello back from bob')");
  await carol.fill("#room", "elsewhere");
  await carol.click("#join");
  await carol.waitForSelector("#messages li:has-text('joined elsewhere')");
  const stale = await carol.locator("#messages li:has-text('hello from alice')").count();
  if (stale !== 0) await fail("the old room's messages stayed after switching rooms");
  await carol.close();

  await alice.setViewportSize({ width: 900, height: 520 });
  await alice.screenshot({ path: screenshot });
  console.log(`ok: two pages chatted; screenshot at ${screenshot}`);
} catch (e) {
  await fail(`e2e failed: ${e.message}`);
}
await browser.close();
