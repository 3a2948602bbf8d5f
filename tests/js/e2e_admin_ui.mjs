// The real @socket.io/admin-ui (its ui/dist from npm, served here) in headless Chromium
// (Debian's package), driven by playwright-core against chatwire's /admin namespace:
// logs in, sees the given sockets, disconnects the first from the UI, screenshots.
// usage: node e2e_admin_ui.mjs <server url> <username> <password> <screenshot> <socket id>...
// After the click it waits for a line on stdin (the test saw the disconnect) to close.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, extname, normalize } from "node:path";
import { createInterface } from "node:readline";

const [serverUrl, username, password, screenshot, ...ids] = process.argv.slice(2);
const root = new URL("./node_modules/@socket.io/admin-ui/ui/dist/", import.meta.url).pathname;
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml", ".woff2": "font/woff2" };
const ui = createServer(async (req, res) => {
  const path = normalize(req.url.split("?")[0]).replace(/^(\.\.[/\\])+/, "");
  let file = join(root, path === "/" ? "index.html" : path);
  let body;
  try { body = await readFile(file); } catch { file = join(root, "index.html"); body = await readFile(file); }
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
  res.end(body);
}).listen(0, "127.0.0.1");
await new Promise((r) => ui.on("listening", r));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const fail = async (msg) => { console.error(msg); await browser.close(); ui.close(); process.exit(1); };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  page.setDefaultTimeout(15000);
  await page.goto(`http://127.0.0.1:${ui.address().port}/`);
  await page.getByLabel("Server URL").fill(serverUrl);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByText(/^connected$/i).first().waitFor();
  await page.getByText("Sockets", { exact: true }).first().click();
  for (const id of ids) await page.getByText(id).first().waitFor();
  console.log(JSON.stringify({ type: "listed", ids }));
  await page.screenshot({ path: screenshot });
  await page.getByText(ids[0]).first().click();
  // The client's status row holds the disconnect button (an icon button).
  await page.locator("tr", { hasText: "Status" }).first().locator("button").first().click();
  console.log(JSON.stringify({ type: "disconnect_clicked", id: ids[0] }));
  await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve).once("close", resolve));
  await browser.close();
  ui.close();
} catch (e) {
  try { const [page] = browser.contexts()[0]?.pages() ?? []; if (page) await page.screenshot({ path: screenshot }); } catch {}
  await fail(String(e));
}
