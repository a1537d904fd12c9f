// Real parts for the dashboard's end-to-end run: the gateway binary, HTTP backends, a Prometheus,
// all on ephemeral loopback ports, stopped at the end.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const children = [];
const servers = [];

/** Stops every child process and backend started here. */
export function cleanup() {
  for (const c of children) c.kill("SIGKILL");
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 100 ms until it returns a truthy value, or throws after `ms`. */
export async function waitFor(what, ms, check) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** An origin answering JSON; `stop()` closes it and every open connection. */
export async function backend(name) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ backend: name, path: req.url });
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
    res.end(body);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  const addr = `127.0.0.1:${server.address().port}`;
  return {
    addr,
    stop: () =>
      new Promise((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}

export function hashPassword(bin, password) {
  const out = spawnSync(bin, ["hash-password"], { input: `${password}\n`, encoding: "utf8" });
  if (out.status !== 0) throw new Error(`hash-password failed: ${out.stderr}`);
  return out.stdout.trim();
}

/** The gateway on `yaml` (a function of the temp dir), waiting until its admin listener answers. */
export async function gateway(bin, ports, makeYaml) {
  const dir = mkdtempSync(join(tmpdir(), "gw-e2e-"));
  const config = join(dir, "gateway.yaml");
  writeFileSync(config, makeYaml(dir));
  const log = openSync(join(dir, "gateway.log"), "a");
  const child = spawn(bin, ["-c", config], { stdio: ["ignore", log, log] });
  children.push(child);
  await waitFor("the gateway's admin listener", 30_000, async () => {
    const r = await fetch(`http://127.0.0.1:${ports.admin}/api/routes`);
    return r.status === 401;
  });
  return {
    dir,
    config,
    write: (yaml) => writeFileSync(config, yaml),
    read: () => readFileSync(config, "utf8"),
    log: () => readFileSync(join(dir, "gateway.log"), "utf8"),
  };
}

/** A real Prometheus scraping `target` every second. */
export async function prometheus(target) {
  const dir = mkdtempSync(join(tmpdir(), "prom-e2e-"));
  const port = await freePort();
  const conf = join(dir, "prometheus.yml");
  writeFileSync(
    conf,
    `global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: gateway\n    static_configs: [{targets: ["${target}"]}]\n`,
  );
  const log = openSync(join(dir, "prometheus.log"), "a");
  const child = spawn(
    "prometheus",
    [`--config.file=${conf}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ["ignore", log, log] },
  );
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor("prometheus to be ready", 30_000, async () => (await fetch(`${url}/-/ready`)).ok);
  return url;
}
