import { describe, expect, it } from "vitest";
import { cacheStore, compact, describeSource, prometheusConfigured, splitSource, toYaml } from "./config";

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

describe("source", () => {
  it("is taken out of the sections and described", () => {
    const { sections, source } = splitSource({ routes: [], source: { kind: "file", path: "/etc/gw.yaml" } });
    expect(sections).toEqual({ routes: [] });
    expect(source && describeSource(source)).toBe("From the file /etc/gw.yaml.");
    expect(splitSource({ routes: [] }).source).toBeUndefined();
  });

  it("says which etcd revision runs and whether the watch is connected", () => {
    expect(
      describeSource({
        kind: "etcd",
        key: "/gateway/config",
        endpoints: ["http://e:2379"],
        revision: 42,
        connected: false,
        file: "/etc/gw.yaml",
        from_local_copy: true,
      }),
    ).toBe(
      "From etcd: /gateway/config, revision 42, with the local file /etc/gw.yaml; etcd unreachable, retrying; started from the local copy.",
    );
  });
});
