// Tokens: the access token lives in memory only, the refresh token in sessionStorage (gone with
// the tab). The access token is renewed 60 s before it expires; a failed renewal or any 401 ends
// the session.

export const REFRESH_KEY = "gw.refresh";
/** Renew this long before the access token expires. */
export const RENEW_BEFORE_MS = 60_000;

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

/** The `exp` claim (seconds) of a JWT, or null when it has none or is not a JWT. */
export function tokenExpiry(token: string): number | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

/** Milliseconds from `nowMs` until a token expiring at `expSeconds` should be renewed (≥ 0). */
export function renewDelay(expSeconds: number, nowMs: number): number {
  return Math.max(0, expSeconds * 1000 - RENEW_BEFORE_MS - nowMs);
}

type Listener = (signedIn: boolean) => void;

interface Timers {
  set: (fn: () => void, ms: number) => unknown;
  clear: (handle: unknown) => void;
  now: () => number;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

export class Session {
  private access: string | null = null;
  private timer: unknown = null;
  private listeners = new Set<Listener>();
  /** Why the last session ended, for the login page. */
  reason: string | null = null;

  constructor(
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
    private readonly storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> = sessionStorage,
    private readonly timers: Timers = realTimers,
  ) {}

  get token(): string | null {
    return this.access;
  }

  get signedIn(): boolean {
    return this.access !== null;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    for (const fn of this.listeners) fn(this.signedIn);
  }

  /** POST /auth/login; throws an Error with the gateway's message when refused. */
  async login(username: string, password: string): Promise<void> {
    const r = await this.fetcher("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!r.ok) {
      const body = (await r.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new Error(body?.error?.message ?? `Login failed (${r.status})`);
    }
    this.accept((await r.json()) as TokenPair);
  }

  /** Resumes a session from the stored refresh token (after a reload of the page). */
  async resume(): Promise<boolean> {
    if (this.signedIn) return true;
    if (!this.storage.getItem(REFRESH_KEY)) return false;
    return this.renew();
  }

  /** Trades the refresh token for a new pair; ends the session when that fails. */
  async renew(): Promise<boolean> {
    const refresh = this.storage.getItem(REFRESH_KEY);
    if (!refresh) {
      this.expire("Your session ended. Please sign in again.");
      return false;
    }
    try {
      const r = await this.fetcher("/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: refresh }),
      });
      if (!r.ok) throw new Error(String(r.status));
      this.accept((await r.json()) as TokenPair);
      return true;
    } catch {
      this.expire("Your session ended. Please sign in again.");
      return false;
    }
  }

  private accept(pair: TokenPair): void {
    this.access = pair.access_token;
    this.storage.setItem(REFRESH_KEY, pair.refresh_token);
    this.reason = null;
    this.schedule();
    this.emit();
  }

  private schedule(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
    const exp = this.access ? tokenExpiry(this.access) : null;
    if (exp === null) return;
    this.timer = this.timers.set(() => void this.renew(), renewDelay(exp, this.timers.now()));
  }

  /** POST /auth/logout (best effort), then forget both tokens. */
  async logout(): Promise<void> {
    const access = this.access;
    const refresh = this.storage.getItem(REFRESH_KEY);
    this.clear();
    this.reason = "Signed out.";
    this.emit();
    if (access) {
      await this.fetcher("/auth/logout", {
        method: "POST",
        headers: { authorization: `Bearer ${access}`, "content-type": "application/json" },
        body: JSON.stringify(refresh ? { refresh_token: refresh } : {}),
      }).catch(() => undefined);
    }
  }

  /** Ends the session without asking the gateway (a 401, a failed renewal). */
  expire(reason: string): void {
    const was = this.signedIn;
    this.clear();
    this.reason = reason;
    if (was) this.emit();
  }

  private clear(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
    this.access = null;
    this.storage.removeItem(REFRESH_KEY);
  }
}
