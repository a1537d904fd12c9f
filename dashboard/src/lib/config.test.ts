import { describe, expect, it } from "vitest";
import { cacheStore, compact, prometheusConfigured, toYaml } from "./config";

describe("compact", () => {
  it("leaves out nulls and empty lists and maps at any depth", () => {
    expect(
      compact({ a: null, b: [], c: {}, d: { e: null, f: 1 }, g: [null, { h: null }, "x"], i: false, j: 0 }),
    ).toEqual({ d: { f: 1 }, g: ["x"], i: false, j: 0 });
    expect(compact({ a: null })).toBeUndefined();
  });
});

describe("toYaml", () => {
  it("writes block YAML with quoted strings where needed", () => {
    const text = toYaml(
      compact({
        listen: { proxy: "0.0.0.0:8080", admin: null },
        routes: [{ name: "users", methods: ["GET", "POST"] }],
        auth: { jwt: { secret: "[redacted]" } },
        server: { threads: 2 },
      }),
    );
    expect(text).toBe(
      [
        "listen:",
        "  proxy: 0.0.0.0:8080",
        "routes:",
        "  - name: users",
        "    methods:",
        "      - GET",
        "      - POST",
        "auth:",
        "  jwt:",
        '    secret: "[redacted]"',
        "server:",
        "  threads: 2",
        "",
      ].join("\n"),
    );
  });
});

describe("what the running config says", () => {
  it("knows whether a Prometheus is configured", () => {
    expect(prometheusConfigured({ admin: { prometheus_url: "http://127.0.0.1:9091" } })).toBe(true);
    expect(prometheusConfigured({ admin: { prometheus_url: "" } })).toBe(false);
    expect(prometheusConfigured({ admin: null })).toBe(false);
  });
  it("names the cache's store", () => {
    expect(cacheStore({ cache: { store: "redis" } })).toBe("redis");
    expect(cacheStore({ cache: { store: "memory" } })).toBe("memory");
    expect(cacheStore({ cache: null })).toBe("none");
    expect(cacheStore({ cache: null, routes: [{ cache: { enabled: true } }] })).toBe("memory");
  });
});
