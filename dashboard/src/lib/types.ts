// Shapes of the admin API's answers (see GET /api/openapi.json).

export interface Backend {
  addr: string;
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
