// Shapes of the admin API's answers (see GET /api/openapi.json).

export interface Backend {
  addr: string;
  /** The backend's name in the config, when it has one. */
  name?: string;
  weight: number;
  healthy: boolean;
  ejected: boolean;
  active_connections: number;
  requests_total: number;
  failures_total: number;
  last_check?: { at_ms: number; ok: boolean; error?: string };
}

export interface Upstream {
  name: string;
  strategy: string;
  healthy: number;
  total: number;
  circuit: "closed" | "open" | "half_open" | null;
  backends: Backend[];
}

export interface Second {
  t: number;
  requests: number;
  errors_4xx: number;
  errors_5xx: number;
  rate_limited: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  cache_hit_ratio: number | null;
  upstreams: Record<string, { requests: number; errors: number }>;
}

export interface History {
  interval_s: number;
  capacity: number;
  seconds: Second[];
}

export interface RouteInfo {
  name: string;
  path: string;
  prefix?: string;
  group?: string | null;
  methods?: string[] | null;
  /** The one upstream, or absent when `upstreams` splits the traffic. */
  upstream?: string;
  upstreams?: { name: string; weight: number }[];
  strip_prefix?: boolean;
  auth?: { required?: boolean | null; roles?: string[] | null } | null;
  rate_limit?: Record<string, unknown> | null;
  cache?: { enabled: boolean; ttl?: string | null; authenticated?: boolean } | null;
  timeout?: string | null;
  /** What applies: group and global settings merged, defaults filled in (the gateway's own view). */
  effective?: Effective;
}

export interface Effective {
  /** `null`: open. */
  auth: { roles: string[] } | null;
  /** `null`: no limit. */
  rate_limit: {
    algorithm: "token_bucket" | "sliding_window";
    rate: string;
    burst: number | null;
    key: string[];
    store: "memory" | "redis";
    on_store_error: "allow" | "deny";
  } | null;
  ip_rules: boolean;
  max_body_size: number | null;
  /** `null`: not cached. */
  cache: { ttl_s: number; authenticated: boolean } | null;
}

export interface Named {
  added: string[];
  removed: string[];
  changed: string[];
}

export interface Changes {
  sections: string[];
  routes: Named;
  upstreams: Named;
  need_restart: string[];
}
