// berth's pages in headless Chromium, as a customer and an operator use them, at a desktop and a
// phone width: the hosted signup page to the live site, the pages a mistake gets, the status page
// through each state, the manage page, and the dashboard's actions. Any console error, script
// error, page over 50 KB, missing security header, unlabelled control, text below WCAG AA
// contrast or page wider than the screen fails the run.
//
// Starts the berth binary named by BERTH_BIN (`berth serve` on free loopback ports, a throwaway
// configuration and SQLite database) and drives it with the system's Chromium (BERTH_CHROMIUM,
// default /usr/bin/chromium). Run it through .ci/browser, which builds berth and installs this
// directory's pinned playwright-core.

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const BERTH = process.env.BERTH_BIN;
const CHROMIUM = process.env.BERTH_CHROMIUM || "/usr/bin/chromium";
const WIDTHS = { desktop: 1280, phone: 390 };
const MAX_PAGE_BYTES = 50 * 1024;

if (!BERTH || !fs.existsSync(BERTH)) {
  console.error("BERTH_BIN must name a berth binary (see .ci/browser)");
  process.exit(2);
}

// --- berth, on free loopback ports ----------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const secret = () => randomBytes(24).toString("hex");
const ADMIN_TOKEN = secret();
const PAID_TOKEN = secret();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "berth-browser-"));
const [apiPort, sitesPort, closedPort] = [await freePort(), await freePort(), await freePort()];
const API = `http://127.0.0.1:${apiPort}`;
const CHECKOUT = `${API}/checkout-is-elsewhere`;

// Tenant `shop`: branded, with plans, the example policies and Stripe. `paid`: sites wait for a
// checkout. `broken`: its DNS provider's API is a port nobody listens on, so provisioning fails.
// Two signups per email, then one per half hour: the third accepted signup meets the limit.
const config = `
[server]
listen = "127.0.0.1:${apiPort}"
sites_listen = "127.0.0.1:${sitesPort}"
public_url = "${API}"

[database]
url = "sqlite://${work}/berth.db"

[email]
transport = "file"
dir = "${work}/outbox"

[jobs]
base_delay_secs = 0
max_attempts = 2
poll_interval_ms = 50

[rate_limits]
signup_per_ip = { per_second = 10000, burst = 10000 }
signup_per_email = { per_hour = 2, burst = 2 }
signup_per_tenant = { per_second = 10000, burst = 10000 }
admin_per_token = { per_second = 10000, burst = 10000 }
admin_failures_per_ip = { per_second = 10000, burst = 10000 }

[[tenants]]
name = "shop"
display_name = "Corner Shop"
accent_color = "#7a3e9d"
base_domain = "localhost"
stripe = { webhook_secrets = ["whsec_${secret()}"] }
plans = { price_basic = { name = "basic" }, price_plus = { name = "plus" } }
policies = [
  { plugin = "reserved-names", file = "builtin:reserved_names.wasm", hook = "name", settings = { names = ["admin", "shop"] } },
  { plugin = "html-guard", file = "builtin:html_guard.wasm", hook = "html" },
]

[[tenants]]
name = "paid"
base_domain = "localhost"
payment_required = true
checkout_url = "${CHECKOUT}"
admin_token = "${PAID_TOKEN}"

[[tenants]]
name = "broken"
base_domain = "localhost"
dns = { provider = "cloudflare", api_token = "not-a-real-token", zone_id = "zone1", api_base = "http://127.0.0.1:${closedPort}", record_type = "A", target = "127.0.0.1", timeout_secs = 2 }
`;
fs.writeFileSync(path.join(work, "berth.toml"), config, { mode: 0o600 });

const log = fs.openSync(path.join(work, "berth.log"), "w");
const berth = spawn(BERTH, ["--config", path.join(work, "berth.toml"), "serve"], {
  cwd: work,
  env: { ...process.env, BERTH_SERVER__ADMIN_TOKEN: ADMIN_TOKEN, RUST_LOG: "warn" },
  stdio: ["ignore", log, log],
});
let berthExited = false;
berth.on("exit", () => { berthExited = true; });

function cleanUp(status) {
  if (!berthExited) berth.kill("SIGTERM");
  if (status !== 0) {
    const lines = fs.readFileSync(path.join(work, "berth.log"), "utf8").trim().split("\n");
    console.error("--- last lines of berth's log\n" + lines.slice(-40).join("\n"));
  }
  fs.rmSync(work, { recursive: true, force: true });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitReady() {
  for (let i = 0; i < 120; i++) {
    if (berthExited) throw new Error("berth exited before it was ready");
    try {
      if ((await fetch(`${API}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error("berth did not become ready");
}

// --- the API, for setting scenes up ---------------------------------------------------------

async function signupJson(tenant, name, email, html = `<h1>Hello from ${name}</h1>`) {
  const response = await fetch(`${API}/t/${tenant}/signup`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ name, email, html }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`signup of ${name}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

async function siteState(tenant, id) {
  const response = await fetch(`${API}/t/${tenant}/sites/${id}`, { headers: { accept: "application/json" } });
  return (await response.json()).state;
}

async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const untilState = (tenant, id, state) =>
  until(`${id} to be ${state}`, async () => (await siteState(tenant, id)) === state);

// --- checks every page passes ---------------------------------------------------------------

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// What berth's own pages carry (SPEC §2.4); customer sites are served under their own sandbox.
function checkHeaders(response) {
  const headers = response.headers();
  const url = response.url();
  const csp = headers["content-security-policy"];
  assert(csp, `${url}: no Content-Security-Policy`);
  // Scripts: berth's own or none (script-src, else default-src, is 'self' or 'none').
  const directive = (name) => csp.split(";").map((d) => d.trim().split(/\s+/)).find((d) => d[0] === name);
  const scripts = directive("script-src") || directive("default-src");
  assert(scripts && scripts.slice(1).every((source) => source === "'self'" || source === "'none'"),
    `${url}: the CSP allows scripts other than berth's own: ${csp}`);
  assert(headers["x-content-type-options"] === "nosniff", `${url}: no X-Content-Type-Options: nosniff`);
}

// Every visible control has a label, no text is below WCAG AA contrast, and nothing is wider
// than the screen. Runs in the page.
function auditInPage() {
  const problems = [];
  const visible = (el) => {
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return style.visibility !== "hidden" && style.display !== "none" && box.width > 1 && box.height > 1 &&
      !el.closest("[aria-hidden=true]");
  };
  for (const control of document.querySelectorAll("input, select, textarea")) {
    if (control.type === "hidden" || !visible(control)) continue;
    if (control.labels.length === 0 && !control.getAttribute("aria-label")) {
      problems.push(`a ${control.tagName.toLowerCase()}#${control.id} has no label`);
    }
  }
  const rgba = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    const parts = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  };
  const over = (top, bottom) => top.slice(0, 3).map((c, i) => c * top[3] + bottom[i] * (1 - top[3])).concat(1);
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] === 1) break;
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
  };
  const luminance = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  for (const el of document.body.querySelectorAll("*")) {
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    // WCAG leaves inactive controls out of the contrast rule.
    if (!ownText || !visible(el) || el.closest(":disabled")) continue;
    const style = getComputedStyle(el);
    const back = background(el);
    const fore = over(rgba(style.color), back);
    const [a, b] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}:1 for "${el.textContent.trim().slice(0, 40)}" (${el.tagName.toLowerCase()})`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    problems.push(`the page is ${document.documentElement.scrollWidth} px wide on a ${window.innerWidth} px screen`);
  }
  return problems;
}

async function audit(page, response) {
  const url = page.url();
  if (response) {
    const bytes = (await response.body()).length;
    assert(bytes < MAX_PAGE_BYTES, `${url}: ${bytes} bytes, over 50 KB`);
    if (response.url().startsWith(API)) checkHeaders(response);
  }
  const problems = await page.evaluate(auditInPage);
  assert(problems.length === 0, `${url}:\n  ${problems.join("\n  ")}`);
}

// Opens `url`, expects `status`, and audits the page.
async function visit(page, url, status = 200) {
  const response = await page.goto(url);
  assert(response.status() === status, `${url}: ${response.status()}, expected ${status}`);
  await audit(page, response);
  return response;
}

// Clicks `selector` and returns the response of the navigation it starts.
async function submit(page, selector) {
  const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
  return response;
}

const text = (page, selector = "body") => page.locator(selector).first().innerText();

// Waits for the page (which may reload itself) to show `wanted`.
async function untilText(page, wanted, ms = 30000) {
  await until(`the page to say "${wanted}"`, async () => {
    try {
      return (await page.innerText("body")).includes(wanted);
    } catch {
      return false; // between two loads of a page that refreshes itself
    }
  }, ms);
}

// --- scenarios ------------------------------------------------------------------------------

const failures = [];
let browser;
let unique = 0;
// Site names and emails nobody else in the run uses.
const fresh = (what) => `${what}-${Date.now().toString(36)}${(unique++).toString(36)}`;

// Runs `body(page, ctx)` in a new browser context of `width`. `ctx.allow(status)` lets Chromium's
// console line for a page deliberately answered with that status through; every other console
// error or script error fails the scenario.
async function scenario(name, width, body) {
  const label = `${name} (${width} px)`;
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  const allowed = new Set();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const status = message.text().match(/the server responded with a status of (\d+)/);
    if (status && allowed.has(Number(status[1]))) return;
    errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`script error: ${error.message}`));
  const started = Date.now();
  try {
    await body(page, { allow: (status) => allowed.add(status), context, width });
    assert(errors.length === 0, errors.join("\n"));
    console.log(`ok   ${label} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failures.push(label);
    console.log(`FAIL ${label}\n  ${String(error.stack || error).replace(/\n/g, "\n  ")}`);
    if (errors.length) console.log(`  also: ${errors.join("\n  ")}`);
  } finally {
    await context.close();
  }
}

// A customer signs up on the hosted page with the keyboard only, watches the status page until
// the site is live, and follows the link to it.
async function hostedSignup(page) {
  const name = fresh("bakery");
  await visit(page, `${API}/t/shop/signup`);
  assert((await page.title()).includes("Corner Shop"), "the page carries the tenant's name");
  await page.focus("#name");
  await page.keyboard.type(name);
  await page.keyboard.press("Tab");
  await page.keyboard.type(`${name}@example.com`);
  await page.keyboard.press("Tab");
  await page.keyboard.press("ArrowDown"); // the plan menu: the second plan
  await page.keyboard.press("Tab");
  await page.keyboard.type(`<h1>Fresh bread from ${name}</h1>`);
  await page.keyboard.press("Tab");
  assert(await page.evaluate(() => document.activeElement.type === "submit"),
    "after the page's HTML, Tab reaches the button (the honeypot is skipped)");
  const [response] = await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert(response.status() === 200 && /\/t\/shop\/sites\/site_/.test(page.url()),
    `the form leads to the status page, not ${page.url()}`);
  await audit(page, response);
  await untilText(page, "Your site is live");
  await audit(page, null);
  const live = page.locator(`a[href^="http://${name}.localhost:${sitesPort}"]`);
  const [site] = await Promise.all([page.waitForNavigation(), live.click()]);
  assert(site.status() === 200, `the live site answers ${site.status()}`);
  assert((await text(page, "h1")) === `Fresh bread from ${name}`, "the live site shows the page typed in");
}

// The mistakes people make, each answered by the form again with the values kept.
async function mistakes(page, { allow }) {
  const taken = fresh("taken");
  await signupJson("shop", taken, `${fresh("first")}@example.com`);

  const attempt = async (values, status) => {
    allow(status);
    await visit(page, `${API}/t/shop/signup`);
    for (const [field, value] of Object.entries(values)) await page.fill(`#${field}`, value);
    await page.$eval("form", (form) => { form.noValidate = true; }); // as a browser without hints
    const response = await submit(page, "button[type=submit]");
    assert(response.status() === status, `${JSON.stringify(values)}: ${response.status()}, expected ${status}`);
    assert(!(await text(page)).trim().startsWith("{"), "a page, not JSON");
    await audit(page, response);
    for (const [field, value] of Object.entries(values)) {
      if (field === "website") continue;
      assert((await page.inputValue(`#${field}`)) === value, `${field} keeps what was typed`);
    }
    assert((await page.inputValue("#website")) === "", "the honeypot is never filled in again");
    const back = page.locator(".problems a");
    assert((await back.count()) === 1 && (await back.getAttribute("href")).endsWith("/t/shop/signup"),
      "a link back to the form's page");
    return text(page);
  };
  const html = "<h1>Hi</h1>";

  let page409 = await attempt({ name: taken, email: `${fresh("b")}@example.com`, html }, 409);
  assert(page409.includes("already taken"), "a taken name says so");
  assert((await page.getAttribute("#name", "aria-invalid")) === "true", "the name is marked");
  assert((await page.getAttribute("#name", "aria-describedby")).includes("name-problem"),
    "the name's problem is read out with it");

  const reserved = await attempt({ name: "admin", email: `${fresh("c")}@example.com`, html }, 422);
  assert(/reserved|not available|not allowed/i.test(reserved), `a reserved name is explained: ${reserved}`);

  const script = await attempt({ name: fresh("scripted"), email: `${fresh("d")}@example.com`, html: "<p>hi</p><script>alert(1)</script>" }, 422);
  assert(/script/i.test(script), `refused HTML says why: ${script}`);

  const email = await attempt({ name: fresh("mail"), email: "not-an-address", html }, 422);
  assert(await page.isVisible("#email-problem"), `the email's problem stands beside it: ${email}`);

  // Refused tries do not count toward the per-email limit (a typo costs nothing); the third
  // accepted signup with one email within the hour meets it.
  const same = `${fresh("again")}@example.com`;
  await attempt({ name: "admin", email: same, html }, 422);
  await signupJson("shop", fresh("one"), same);
  await signupJson("shop", fresh("two"), same);
  const limited = await attempt({ name: fresh("late"), email: same, html }, 429);
  assert(/try again in (\d+ minutes|a minute)/.test(limited), `the limit reads as words: ${limited}`);
}

// The status page of a site waiting for payment, and of one whose setting up failed.
async function statusPages(page) {
  const waiting = await signupJson("paid", fresh("pay"), `${fresh("p")}@example.com`);
  await visit(page, waiting.status_url);
  assert((await text(page, "h1")).includes("Waiting for payment"), "pending payment says so");
  const pay = await page.getAttribute("a:text('Pay now')", "href");
  assert(pay === `${CHECKOUT}?client_reference_id=${waiting.id}`, `and links the checkout: ${pay}`);

  const failing = await signupJson("broken", fresh("fails"), `${fresh("f")}@example.com`);
  await page.goto(failing.status_url);
  await untilText(page, "Setting up this site failed");
  const said = await text(page);
  assert(said.includes("dashboard") && !/will retry|has been told/.test(said),
    `a failure promises only what berth does: ${said}`);
  await audit(page, null);
}

// Accepts the next dialogs in order (true: OK, false: Cancel).
function answerDialogs(page, answers) {
  const handler = async (dialog) => {
    const answer = answers.shift();
    if (answers.length === 0) page.off("dialog", handler);
    if (answer === false) await dialog.dismiss();
    else await dialog.accept(typeof answer === "string" ? answer : undefined);
  };
  page.on("dialog", handler);
}

// Waits for the dashboard to say how an action went.
async function feedback(page, wanted) {
  await until(`the dashboard to say "${wanted}"`, async () => (await text(page, "#message")).includes(wanted), 10000);
  assert(await page.locator("#message.ok").count() === 1, `"${wanted}" is shown as a success`);
}

const siteRow = (page, hostname) => page.locator("#sites tr", { hasText: hostname });

// An operator logs in, finds sites, and suspends, resumes, retries, re-links and deletes them;
// the customer's pages follow each step.
async function dashboard(page, { allow, context }) {
  const name = fresh("florist");
  const email = `${fresh("flo")}@Example.com`;
  const site = await signupJson("shop", name, email);
  const host = `${name}.localhost`;
  await untilState("shop", site.id, "ready");
  const broken = await signupJson("broken", fresh("wilted"), `${fresh("w")}@example.com`);
  await untilState("broken", broken.id, "failed");

  await visit(page, `${API}/admin`);
  await page.fill("#token", "wrong");
  allow(401);
  await page.press("#token", "Enter");
  await until("the wrong token to be refused", async () => (await text(page, "#login-message")).includes("not accepted"));
  await page.fill("#token", ADMIN_TOKEN);
  await page.press("#token", "Enter");
  await until("the sites to show", async () => (await siteRow(page, host).count()) === 1);
  await audit(page, null);
  const row = siteRow(page, host);
  const shown = await row.innerText();
  assert(shown.includes(site.id) && shown.includes(email) && shown.includes("ready"),
    `a site's row has its id, email and state: ${shown}`);
  assert(await row.locator(`a[href="${site.status_url}"]`).count() === 1, "and links its status page");
  // The sites show first; the sections below them fill in as the rest of the refresh answers,
  // and the scope line is the last thing it writes.
  await until("the whole first refresh", async () => (await text(page, "#scope")).includes("global token"));
  assert(await page.isVisible("#stripe-section"), "a tenant with Stripe has the Stripe section");
  assert((await text(page, "#events")).includes("No Stripe events need a look"), "an empty list says so");

  // Search by email (any case), then by a name nobody has.
  await page.fill("#q", email.toLowerCase());
  await until("the search", async () => (await page.locator("#sites tr").count()) === 1 && (await siteRow(page, host).count()) === 1);
  await page.fill("#q", "nobody-has-this-name");
  await until("the empty search", async () => (await text(page, "#sites")).includes("No sites match these filters"));
  await page.fill("#q", "");

  // The failed site: filter by state, retry it.
  await page.selectOption("#state", "failed");
  await until("the failed filter", async () => (await page.locator("#sites tr", { hasText: broken.id }).count()) === 1);
  assert(!(await text(page, "#sites")).includes(host), "the filter leaves the ready site out");
  assert((await text(page, "#jobs")).includes(broken.id), "its failed job is listed");
  await page.locator("#sites tr", { hasText: broken.id }).getByRole("button", { name: "Retry" }).click();
  await feedback(page, "again.");
  await untilState("broken", broken.id, "failed");
  // Its first failed job is now an old story: shown as superseded, with no Retry of its own.
  const brokenJobs = page.locator("#jobs tr", { hasText: broken.id });
  await until("the superseded job", async () => (await brokenJobs.count()) === 2
    && (await brokenJobs.filter({ hasText: "superseded" }).count()) === 1);
  assert((await brokenJobs.getByRole("button", { name: "Retry" }).count()) === 1,
    "only the newest failed job can be retried");
  await page.selectOption("#state", "");

  // Suspend: visitors see the paused page, the customer the suspended status.
  answerDialogs(page, [true]);
  await until("the row", async () => (await siteRow(page, host).count()) === 1);
  await siteRow(page, host).getByRole("button", { name: "Suspend" }).click();
  await feedback(page, `Suspending ${host}.`);
  await untilState("shop", site.id, "suspended");
  const visitor = await context.newPage();
  const paused = await visitor.goto(`http://${host}:${sitesPort}/`);
  assert(paused.status() === 503 && paused.headers()["retry-after"], "a paused site answers 503 with Retry-After");
  assert((await text(visitor, "h1")).includes("paused"), "and says it is paused");
  await visitor.goto(site.status_url);
  await untilText(visitor, "This site is suspended");
  await visitor.close();

  await until("Resume", async () => (await siteRow(page, host).getByRole("button", { name: "Resume" }).count()) === 1);
  await siteRow(page, host).getByRole("button", { name: "Resume" }).click();
  await feedback(page, `Resuming ${host}.`);
  await untilState("shop", site.id, "ready");

  // A new manage link, shown once, opens the manage page.
  answerDialogs(page, [true, false]);
  await until("the row", async () => (await siteRow(page, host).getByRole("button", { name: "New manage link" }).count()) === 1);
  await siteRow(page, host).getByRole("button", { name: "New manage link" }).click();
  await feedback(page, "New manage link");
  const manageUrl = (await text(page, "#message")).match(/https?:\/\/\S+#token=\S+/)[0];
  await manage(context, manageUrl, site, host);

  // Delete: the site leaves the list, stays findable with "Show deleted", and its status page
  // says how to sign up again.
  answerDialogs(page, [true]);
  await siteRow(page, host).getByRole("button", { name: "Delete" }).click();
  await feedback(page, `Deleting ${host}.`);
  await untilState("shop", site.id, "deleted");
  await until("the deleted site to leave the list", async () => (await siteRow(page, host).count()) === 0);
  await page.check("#deleted");
  await until("deleted sites to show", async () => (await siteRow(page, host).count()) === 1);
  assert((await siteRow(page, host).innerText()).includes("deleted"), "marked deleted");
  const customer = await context.newPage();
  await visit(customer, site.status_url);
  assert((await text(customer, "h1")).includes("removed"), "the status page says it was removed");
  assert(await customer.locator("a", { hasText: "sign up" }).count() === 1, "and links the signup page");
  await customer.close();
  await audit(page, null);
}

// The customer's manage page: the token leaves the address bar, a new version goes live.
async function manage(context, url, site, host) {
  const page = await context.newPage();
  await visit(page, url);
  assert(!page.url().includes("token"), `the token leaves the address bar: ${page.url()}`);
  await until("the versions", async () => (await page.locator("#versions tr").count()) > 0);
  await audit(page, null);
  const html = `<h1>New season at ${site.name}</h1>`;
  await page.fill("#html", html);
  await page.click("#edit button[type=submit]");
  await until("version 2 to go live", async () => (await text(page, "#live")) === "2");
  // Chromium resolves every *.localhost name to loopback, as the live site's link relies on.
  const visitor = await context.newPage();
  await visitor.goto(`http://${host}:${sitesPort}/`);
  assert((await text(visitor, "h1")) === `New season at ${site.name}`, "the live site shows the new version");
  await visitor.close();
  await page.close();
}

// Enough sites for a second page, and the pager between them.
async function paging(page) {
  const tag = fresh("page");
  for (let i = 0; i < 51; i++) await signupJson("paid", `${tag}-${i}`, `${tag}-${i}@example.com`);
  await visit(page, `${API}/admin`);
  await page.fill("#token", ADMIN_TOKEN);
  await page.press("#token", "Enter");
  await page.selectOption("#tenant", "paid");
  await page.fill("#q", tag);
  const shown = async () => (await page.locator("#sites tr", { hasText: tag }).allInnerTexts())
    .map((row) => row.match(new RegExp(`${tag}-\\d+`))[0]);
  await Promise.all([
    page.waitForResponse((response) => response.url().includes(`q=${tag}`)),
    page.press("#q", "Enter"),
  ]);
  await until("a first page of the search", async () =>
    (await page.locator("#sites tr").count()) === 50 && (await shown()).length === 50);
  assert(await page.isDisabled("#newer"), "the first page has nothing newer");
  const first = await shown();
  await page.click("#older");
  await until("the second page", async () => (await text(page, "#page")) === "Sites 51–51");
  assert(await page.isDisabled("#older"), "the last page has nothing older");
  const all = new Set([...first, ...(await shown())]);
  assert(first.length === 50 && all.size === 51, `the two pages hold every site once: ${[...all]}`);
  await page.click("#newer");
  await until("the first page again", async () => (await text(page, "#page")).startsWith("Sites 1–50"));
  await audit(page, null);
}

// A tenant's token sees its tenant only, without the sections it has no part in.
async function tenantDashboard(page) {
  await visit(page, `${API}/admin`);
  await page.fill("#token", PAID_TOKEN);
  await page.press("#token", "Enter");
  await until("the scope", async () => (await text(page, "#scope")).includes("tenant token (paid)"));
  assert(!(await page.isVisible("#stripe-section")), "no Stripe section for a tenant without Stripe");
  assert(!(await page.isVisible("#jobs-section")), "the job queue is the global token's");
  assert(!(await page.isVisible("#tenant-filter")), "no tenant filter with one tenant");
  await audit(page, null);
}

// --- run ------------------------------------------------------------------------------------

let status = 1;
try {
  await waitReady();
  console.log(`berth serve on ${API} (sites on ${sitesPort}); Chromium at ${CHROMIUM}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  for (const [device, width] of Object.entries(WIDTHS)) {
    await scenario(`hosted signup to the live site, ${device}`, width, hostedSignup);
    await scenario(`mistakes on the signup page, ${device}`, width, mistakes);
    await scenario(`status pages, ${device}`, width, statusPages);
    await scenario(`dashboard and manage page, ${device}`, width, dashboard);
    await scenario(`a tenant's dashboard, ${device}`, width, tenantDashboard);
  }
  await scenario("dashboard paging, desktop", WIDTHS.desktop, paging);
  await browser.close();
  status = failures.length === 0 ? 0 : 1;
  console.log(failures.length === 0 ? "all browser scenarios passed" : `FAILED: ${failures.join("; ")}`);
} catch (error) {
  console.error(error.stack || error);
} finally {
  cleanUp(status);
}
process.exit(status);
