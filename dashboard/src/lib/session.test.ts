import { describe, expect, it, vi } from "vitest";
import { REFRESH_KEY, renewDelay, Session, tokenExpiry } from "./session";

function jwt(exp: number): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b64({ alg: "HS256" })}.${b64({ sub: "admin", exp })}.sig`;
}

class MemoryStorage {
  items = new Map<string, string>();
  getItem(k: string) {
    return this.items.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.items.set(k, v);
  }
  removeItem(k: string) {
    this.items.delete(k);
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

describe("token refresh scheduling", () => {
  it("reads exp and renews 60 s before it", () => {
    expect(tokenExpiry(jwt(1000))).toBe(1000);
    expect(tokenExpiry("not-a-jwt")).toBeNull();
    expect(renewDelay(1000, 900_000)).toBe(40_000);
    expect(renewDelay(1000, 999_000)).toBe(0);
  });

  it("renews with the refresh token when the timer fires, and rotates it", async () => {
    let now = 1_000_000;
    const timers: { fn: () => void; ms: number }[] = [];
    const fetcher = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      if (String(url) === "/auth/login") {
        return json(200, { access_token: jwt(now / 1000 + 900), refresh_token: "r1", expires_in: 900 });
      }
      expect(String(url)).toBe("/auth/refresh");
      expect(JSON.parse(String(init?.body))).toEqual({ refresh_token: "r1" });
      return json(200, { access_token: jwt(now / 1000 + 900), refresh_token: "r2", expires_in: 900 });
    });
    const storage = new MemoryStorage();
    const s = new Session(fetcher as unknown as typeof fetch, storage, {
      set: (fn, ms) => timers.push({ fn, ms }),
      clear: () => undefined,
      now: () => now,
    });
    await s.login("admin", "pw");
    expect(s.signedIn).toBe(true);
    expect(timers[0].ms).toBe(840_000);
    expect(storage.getItem(REFRESH_KEY)).toBe("r1");
    now += 840_000;
    timers[0].fn();
    await vi.waitFor(() => expect(storage.getItem(REFRESH_KEY)).toBe("r2"));
    expect(fetcher).toHaveBeenCalledTimes(2);
    expect(timers[1].ms).toBe(840_000);
  });

  it("ends the session when renewal is refused", async () => {
    const storage = new MemoryStorage();
    storage.setItem(REFRESH_KEY, "stale");
    const fetcher = vi.fn(async () => json(401, { error: { code: "invalid_token" } }));
    const s = new Session(fetcher as unknown as typeof fetch, storage);
    expect(await s.resume()).toBe(false);
    expect(s.signedIn).toBe(false);
    expect(storage.getItem(REFRESH_KEY)).toBeNull();
    expect(s.reason).toMatch(/sign in again/);
  });

  it("logs out at the gateway with both tokens and forgets them", async () => {
    const storage = new MemoryStorage();
    const calls: [string, RequestInit | undefined][] = [];
    const fetcher = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      calls.push([String(url), init]);
      return url === "/auth/login"
        ? json(200, { access_token: jwt(9_999_999_999), refresh_token: "r1", expires_in: 900 })
        : new Response(null, { status: 204 });
    });
    const s = new Session(fetcher as unknown as typeof fetch, storage, {
      set: () => 0,
      clear: () => undefined,
      now: () => 0,
    });
    await s.login("admin", "pw");
    const seen: boolean[] = [];
    s.subscribe((v) => seen.push(v));
    await s.logout();
    expect(seen).toEqual([false]);
    expect(calls[1][0]).toBe("/auth/logout");
    expect(new Headers(calls[1][1]?.headers).get("authorization")).toMatch(/^Bearer /);
    expect(JSON.parse(String(calls[1][1]?.body))).toEqual({ refresh_token: "r1" });
    expect(storage.getItem(REFRESH_KEY)).toBeNull();
  });
});
