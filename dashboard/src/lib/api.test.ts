import { describe, expect, it, vi } from "vitest";
import { Api, ApiError } from "./api";
import { Session } from "./session";

function signedInSession(): Session {
  const store = new Map<string, string>();
  const storage = {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => void store.set(k, v),
    removeItem: (k: string) => void store.delete(k),
  };
  const login = vi.fn(
    async () =>
      new Response(JSON.stringify({ access_token: "a.b.c", refresh_token: "r", expires_in: 900 }), { status: 200 }),
  );
  const s = new Session(login as unknown as typeof fetch, storage, { set: () => 0, clear: () => undefined, now: () => 0 });
  return s;
}

describe("Api", () => {
  it("sends the bearer token and returns JSON", async () => {
    const session = signedInSession();
    await session.login("admin", "pw");
    const fetcher = vi.fn(async (_: RequestInfo | URL, init?: RequestInit) => {
      expect(new Headers(init?.headers).get("authorization")).toBe("Bearer a.b.c");
      return new Response(JSON.stringify({ upstreams: [] }), { status: 200 });
    });
    const api = new Api(session, fetcher as unknown as typeof fetch);
    expect(await api.json("/api/upstreams")).toEqual({ upstreams: [] });
  });

  it("ends the session on any 401", async () => {
    const session = signedInSession();
    await session.login("admin", "pw");
    const changes: boolean[] = [];
    session.subscribe((v) => changes.push(v));
    const fetcher = vi.fn(async () => new Response('{"error":{"code":"invalid_token"}}', { status: 401 }));
    const api = new Api(session, fetcher as unknown as typeof fetch);
    await expect(api.json("/api/routes")).rejects.toMatchObject({ status: 401 });
    expect(session.signedIn).toBe(false);
    expect(changes).toEqual([false]);
    expect(session.reason).toMatch(/session ended/);
  });

  it("carries the gateway's error code, message and config problems", async () => {
    const session = signedInSession();
    await session.login("admin", "pw");
    const body = {
      error: {
        code: "invalid_config",
        message: "The config file has problems",
        problems: [{ path: "routes[0].upstream", message: "unknown upstream" }],
      },
    };
    const fetcher = vi.fn(async () => new Response(JSON.stringify(body), { status: 400 }));
    const api = new Api(session, fetcher as unknown as typeof fetch);
    const err = await api.post("/api/reload").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe("invalid_config");
    expect((err as ApiError).problems).toHaveLength(1);
    expect(session.signedIn).toBe(true);
  });

  it("returns Prometheus' own errors as data", async () => {
    const session = signedInSession();
    await session.login("admin", "pw");
    const prom = { status: "error", errorType: "bad_data", error: "parse error" };
    const fetcher = vi.fn(async () => new Response(JSON.stringify(prom), { status: 400 }));
    const api = new Api(session, fetcher as unknown as typeof fetch);
    expect(await api.promql("/api/promql?query=rate(")).toEqual(prom);
  });
});
