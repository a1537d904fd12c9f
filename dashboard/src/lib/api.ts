// Calls to the admin API with the session's token. Any 401 ends the session (the app then shows
// the login page); other failures throw an ApiError carrying the gateway's error code and message.

import type { Session } from "./session";

export interface Problem {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: { code?: string; message?: string; problems?: Problem[] };
}

export class Api {
  constructor(
    private readonly session: Session,
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
  ) {}

  private async call(path: string, init: RequestInit = {}): Promise<Response> {
    const token = this.session.token;
    if (!token) {
      this.session.expire("Please sign in.");
      throw new ApiError(401, "unauthorized", "Please sign in.");
    }
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token}`);
    const r = await this.fetcher(path, { ...init, headers });
    if (r.status === 401) {
      this.session.expire("Your session ended. Please sign in again.");
      throw new ApiError(401, "unauthorized", "Your session ended. Please sign in again.");
    }
    if (!r.ok) {
      const body = (await r.json().catch(() => ({}))) as ErrorBody;
      throw new ApiError(
        r.status,
        body.error?.code ?? "error",
        body.error?.message ?? `${r.status} ${r.statusText}`,
        body.error?.problems ?? [],
      );
    }
    return r;
  }

  async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.call(path, init)).json()) as T;
  }

  async text(path: string): Promise<string> {
    return (await this.call(path)).text();
  }

  async post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  /** PromQL keeps Prometheus' own error answers: they come back as data, not exceptions. */
  async promql(path: string): Promise<PromAnswer> {
    const token = this.session.token;
    const r = await this.fetcher(path, { headers: { authorization: `Bearer ${token ?? ""}` } });
    if (r.status === 401) {
      this.session.expire("Your session ended. Please sign in again.");
      throw new ApiError(401, "unauthorized", "Your session ended. Please sign in again.");
    }
    const body = (await r.json().catch(() => ({}))) as unknown;
    // The gateway's own errors (`{"error":{...}}`) are exceptions; Prometheus' are data.
    const own = (body as ErrorBody).error;
    if (own && typeof own === "object") {
      throw new ApiError(r.status, own.code ?? "error", own.message ?? String(r.status));
    }
    return body as PromAnswer;
  }
}

export interface PromAnswer {
  status: "success" | "error";
  error?: string;
  errorType?: string;
  data?: {
    resultType: "vector" | "matrix" | "scalar" | "string";
    result: PromSeries[] | [number, string];
  };
}

export interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}
