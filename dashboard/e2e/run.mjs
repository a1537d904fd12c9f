// The dashboard end to end in headless Chromium (Debian's, driven by playwright-core) against the
// real gateway binary, real backends and a real Prometheus. Screenshots of every page go to
// e2e/artifacts/ (not committed). Exits non-zero on the first failed step.

import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { backend, cleanup, freePort, gateway, hashPassword, prometheus, waitFor } from "./harness.mjs";

const bin = resolve(process.env.GATEWAY_BIN ?? "../target/debug/gateway");
const dist = resolve("dist");
const artifacts = resolve("e2e/artifacts");
mkdirSync(artifacts, { recursive: true });
const SECRET = "e2e-secret-0123456789-abcdefghijklmnop";

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

let gw;
let browser;
try {
  const [a, b] = [await backend("a"), await backend("b")];
  const ports = { proxy: await freePort(), metrics: await freePort(), admin: await freePort() };
  const prom = await prometheus(`127.0.0.1:${ports.metrics}`);
  const hash = hashPassword(bin, "admin-pass");
  const yaml = (dir, { secret = SECRET, cachedUpstream = "app", promUrl = prom } = {}) => `server: {threads: 1, pid_file: ${dir}/gw.pid, upgrade_sock: ${dir}/up.sock, grace_period: 1s, graceful_shutdown_timeout: 2s}
listen: {proxy: "127.0.0.1:${ports.proxy}", metrics: "127.0.0.1:${ports.metrics}", admin: "127.0.0.1:${ports.admin}"}
log: {level: info, format: json, access_log: false}
admin: {dashboard_dir: "${dist}", prometheus_url: "${promUrl}"}
auth:
  jwt: {algorithm: HS256, secret: "${secret}", issuer: gw, audience: api, access_ttl: 70s, refresh_ttl: 1h}
  users: [{username: admin, password_hash: "${hash}", roles: [admin]}]
upstreams:
  app:
    backends: [{addr: "${a.addr}", name: backend-a}, {addr: "${b.addr}", name: backend-b}]
    health_check: {kind: http, path: /health, interval: 500ms, timeout: 300ms, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - {name: app, path: /app, upstream: app}
  - {name: cached, path: /cached, upstream: ${cachedUpstream}, cache: {enabled: true, ttl: 60s}}
  - {name: guarded, path: /guarded, upstream: app, auth: {required: true, roles: [admin]}, rate_limit: {rate: 5/s, burst: 10}}
`;
  gw = await gateway(bin, ports, (dir) => yaml(dir));
  const admin = `http://127.0.0.1:${ports.admin}`;
  const proxy = `http://127.0.0.1:${ports.proxy}`;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    // Answers with an error status (a refused reload, a 401) are expected; script errors and
    // CSP refusals are not.
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(e.message));
  let refreshes = 0;
  page.on("request", (r) => {
    if (r.url().endsWith("/auth/refresh")) refreshes++;
  });
  const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
  const step = (name) => console.log(`dashboard e2e: ${name}`);

  step("log in");
  await page.goto(`${admin}/`);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Invalid credentials" }).waitFor();
  await shot("login");
  await page.getByLabel("Password").fill("admin-pass");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const loggedInAt = Date.now();
  const storedAtLogin = await page.evaluate(() => JSON.stringify(sessionStorage));

  step("a trend chart moves under load");
  const points = () => page.locator('[data-testid="chart-requests"] polyline[data-series="requests"]').getAttribute("points");
  const before = await points();
  let loading = true;
  const load = (async () => {
    while (loading) await Promise.all(Array.from({ length: 5 }, () => fetch(`${proxy}/app/x`).then((r) => r.text())));
  })();
  await waitFor("requests in the overview", 15_000, async () => {
    const rps = Number((await page.getByTestId("tile-rps").locator(".tile-value").textContent()) ?? "0");
    return rps > 0 && (await points()) !== before;
  });
  // A few more seconds of traffic, so the trend charts show a line (docs/dashboard.png is this shot).
  await waitFor("ten seconds of points", 30_000, async () => ((await points()) ?? "").split(" ").length >= 10);
  loading = false;
  await load;
  const axis = ((await page.getByTestId("chart-requests-time").textContent()) ?? "").match(/\d\d:\d\d:\d\d/g) ?? [];
  assert(axis.length === 3, `the trend chart has a time axis: ${axis}`);
  await shot("overview");

  step("backends, and one going down");
  await page.getByRole("link", { name: "Backends" }).click();
  const health = (addr) => page.getByTestId(`backend-${addr}`).getByTestId("health");
  await waitFor("both backends healthy", 10_000, async () =>
    (await health(a.addr).textContent()) === "healthy" && (await health(b.addr).textContent()) === "healthy");
  await b.stop();
  const stoppedAt = Date.now();
  await waitFor("the stopped backend to show unhealthy", 8_000, async () => (await health(b.addr).textContent()) === "unhealthy");
  console.log(`dashboard e2e: unhealthy shown ${Date.now() - stoppedAt} ms after the stop`);
  assert((await health(a.addr).textContent()) === "healthy", "the other backend stays healthy");
  assert(
    ((await page.getByTestId(`backend-${a.addr}`).locator("td").first().textContent()) ?? "") === "backend-a",
    "backends show their names",
  );
  await shot("backends");

  step("metrics computed in the browser");
  await page.getByRole("link", { name: "Metrics" }).click();
  for (let i = 0; i < 20; i++) await fetch(`${proxy}/app/m`);
  await waitFor("a rate chart with points", 15_000, async () => {
    const p = await page.locator('[data-testid="metrics-rps"] polyline[data-series="all"]').getAttribute("points");
    return p && p.split(" ").length >= 2;
  });
  await shot("metrics");

  step("PromQL, instant and range");
  await page.getByRole("link", { name: "PromQL" }).click();
  await page.getByLabel("Query").fill('up{job="gateway"}');
  await waitFor("prometheus to have scraped the gateway", 20_000, async () => {
    await page.getByRole("button", { name: "Run" }).click();
    const row = page.getByTestId("promql-table").locator("tbody tr").first();
    return (await row.count()) > 0 && /up\{.*job="gateway".*\}\s*1$/.test(((await row.textContent()) ?? "").trim());
  });
  await page.getByLabel("Range").check();
  await page.getByRole("button", { name: "Run" }).click();
  await page.getByTestId("promql-chart").waitFor();
  assert((await page.getByRole("button", { name: 'up{job="gateway"}' }).count()) === 1, "the query is in the history");
  await shot("promql");

  step("routes");
  await page.getByRole("link", { name: "Routes" }).click();
  await page.getByRole("cell", { name: "cached", exact: true }).waitFor();
  const cell = async (route, what) => (await page.getByTestId(`route-${route}`).getByTestId(what).textContent()) ?? "";
  assert((await cell("app", "auth")) === "open", `an open route says so: ${await cell("app", "auth")}`);
  assert((await cell("app", "rate-limit")) === "none", "no limit on the open route");
  assert((await cell("guarded", "auth")) === "token, roles: admin", `guarded: ${await cell("guarded", "auth")}`);
  assert(
    /^5\/1?s, burst 10per client_ip \+ user \+ path · memory$/.test(await cell("guarded", "rate-limit")),
    `the limit: ${await cell("guarded", "rate-limit")}`,
  );
  assert((await cell("cached", "cache")) === "on, 60s", `the cache: ${await cell("cached", "cache")}`);
  await shot("routes");

  step("purge");
  const cacheStatus = async () => (await fetch(`${proxy}/cached/x`)).headers.get("x-cache-status");
  await cacheStatus();
  assert((await cacheStatus()) === "HIT", "the entry is cached");
  await page.getByRole("link", { name: "Cache" }).click();
  await page.getByLabel("URL", { exact: true }).fill("/cached/x");
  await page.getByRole("button", { name: "Purge" }).click();
  await page.getByText("Purged 1 entry for url /cached/x").waitFor();
  assert(((await page.getByTestId("cache-store").textContent()) ?? "").startsWith("Memory store"), "the store in use");
  assert((await cacheStatus()) === "MISS", "purged from the cache");
  await shot("cache");

  step("reload a broken config and see the problems");
  await page.getByRole("link", { name: "Config" }).click();
  await page.getByTestId("config").filter({ hasText: "[redacted]" }).waitFor();
  const configText = (await page.getByTestId("config").textContent()) ?? "";
  assert(!configText.includes(SECRET), "the secret is redacted");
  const sourceText = (await page.getByTestId("config-source").textContent()) ?? "";
  assert(sourceText.startsWith("From the file ") && !configText.includes("source:"), `where the config comes from: ${sourceText}`);
  assert(/^routes:$/m.test(configText) && !configText.includes("null"), `the config as YAML, no nulls: ${configText.slice(0, 200)}`);
  const good = gw.read();
  gw.write(yaml(gw.dir, { cachedUpstream: "nowhere" }));
  await page.getByRole("button", { name: "Reload" }).click();
  await page.getByTestId("problems").filter({ hasText: "routes[1].upstream" }).waitFor();
  await shot("config-problems");
  gw.write(good);
  await page.getByRole("button", { name: "Reload" }).click();
  await page.getByText("Reloaded: nothing changed.").waitFor();
  assert((await page.getByTestId("problems").count()) === 0, "the problems are gone after a good reload");
  await shot("config");

  step("PromQL without a Prometheus says so before anything is run");
  gw.write(yaml(gw.dir, { promUrl: "" }));
  await page.getByRole("button", { name: "Reload" }).click();
  await page.getByText(/Reloaded: admin changed/).waitFor();
  await page.getByRole("link", { name: "PromQL" }).click();
  await page.getByTestId("promql-off").waitFor();
  assert(await page.getByRole("button", { name: "Run" }).isDisabled(), "Run is off without a Prometheus");
  await shot("promql-off");
  gw.write(good);
  await page.getByRole("link", { name: "Config" }).click();
  await page.getByRole("button", { name: "Reload" }).click();
  await page.getByText(/Reloaded: admin changed/).waitFor();

  step("the access token is renewed before it expires");
  await waitFor("the automatic renewal (due 10 s after login)", Math.max(1000, 20_000 - (Date.now() - loggedInAt)), () => refreshes > 0);
  // The page is reloaded below: the renewed refresh token must be stored first (a reload while
  // the renewal is in flight sends the old one again, and the gateway revokes a reused one).
  await page.waitForFunction((before) => JSON.stringify(sessionStorage) !== before, storedAtLogin, { timeout: 10_000 });
  await page.getByRole("link", { name: "Backends" }).click();
  await page.getByTestId(`backend-${a.addr}`).waitFor();

  step("theme and brand colour, remembered");
  const root = page.locator("html");
  assert((await root.getAttribute("data-theme")) === "dark", "dark by default");
  await page.getByLabel("Switch to light theme").click();
  await page.getByLabel("Brand colour").fill("#2e8b57");
  await page.reload();
  await page.getByRole("heading", { name: "Backends" }).waitFor();
  assert((await root.getAttribute("data-theme")) === "light", "light after a reload");
  const brand = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--brand").trim());
  assert(brand === "#2e8b57", `brand colour remembered, got ${brand}`);
  await shot("backends-light");

  step("phone-sized screen");
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  // A new tab has no session (the refresh token lives in the tab's sessionStorage).
  await phone.goto(`${admin}/backends`);
  await phone.getByLabel("Username").fill("admin");
  await phone.getByLabel("Password").fill("admin-pass");
  await phone.getByRole("button", { name: "Sign in" }).click();
  await phone.getByRole("heading", { name: "Backends" }).waitFor();
  assert((await phone.locator("html").getAttribute("data-theme")) === "light", "the theme is shared by tabs");
  assert(!(await phone.getByRole("link", { name: "Metrics" }).isVisible()), "the menu starts closed");
  await phone.getByRole("button", { name: "Menu" }).click();
  await phone.getByRole("link", { name: "Metrics" }).click();
  await phone.getByRole("heading", { name: "Metrics" }).waitFor();
  await phone.screenshot({ path: `${artifacts}/phone-metrics.png`, fullPage: true });
  await phone.close();

  step("a 401 returns to the login page");
  // Rotating the JWT secret ends every session: the page's next call gets 401.
  const login = await fetch(`${admin}/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "admin-pass" }),
  });
  const { access_token: token } = await login.json();
  gw.write(yaml(gw.dir, { secret: "e2e-rotated-secret-0123456789-abcdefgh" }));
  const rotated = await fetch(`${admin}/api/reload`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
  assert(rotated.status === 200, `reload with the new secret: ${rotated.status}`);
  await page.getByText("Your session ended. Please sign in again.").waitFor({ timeout: 10_000 });
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("admin-pass");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Backends" }).waitFor();

  step("log out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  assert((await page.evaluate(() => sessionStorage.length)) === 0, "no token left in sessionStorage");
  await page.goto(`${admin}/config`);
  await page.getByRole("button", { name: "Sign in" }).waitFor();

  assert(problems.length === 0, `console errors (CSP or script): ${problems.join(" | ")}`);
  console.log("dashboard e2e: all steps passed");
} catch (e) {
  console.error(`dashboard e2e FAILED: ${e.stack ?? e}`);
  if (gw) console.error(`--- gateway log (tail) ---\n${gw.log().split("\n").slice(-30).join("\n")}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
  cleanup();
}
// Nothing started here may keep the process alive past the verdict.
process.exit(process.exitCode ?? 0);
