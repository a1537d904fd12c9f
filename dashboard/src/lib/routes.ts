import type { Effective, RouteInfo } from "./types";

/** A route's upstream: `v1`, or each upstream with its share for a route that splits its traffic. */
export function upstreamText(r: Pick<RouteInfo, "upstream" | "upstreams">): string {
  if (!r.upstreams) return r.upstream ?? "–";
  const total = r.upstreams.reduce((sum, u) => sum + u.weight, 0) || 1;
  return r.upstreams.map((u) => `${u.name} ${Math.round((u.weight / total) * 1000) / 10}%`).join(" · ");
}

/** The authentication a route's requests meet: `open`, or `token` with the roles it needs. */
export function authText(e: Effective | undefined): string {
  if (!e) return "–";
  if (!e.auth) return "open";
  return e.auth.roles.length ? `token, roles: ${e.auth.roles.join(", ")}` : "token";
}

/** The limit a route's requests meet: `none`, or its rate and burst (or sliding window). */
export function limitText(e: Effective | undefined): string {
  if (!e) return "–";
  const l = e.rate_limit;
  if (!l) return "none";
  return l.algorithm === "sliding_window" ? `${l.rate}, sliding window` : `${l.rate}, burst ${l.burst ?? "–"}`;
}

/** What a route's limit counts by, and where: `per client_ip + user · memory`; empty without one. */
export function limitDetail(e: Effective | undefined): string {
  const l = e?.rate_limit;
  return l ? `per ${l.key.join(" + ")} · ${l.store}` : "";
}

/** A route's caching: `off`, or its freshness when the origin says nothing. */
export function cacheText(e: Effective | undefined): string {
  if (!e) return "–";
  if (!e.cache) return "off";
  return `on, ${e.cache.ttl_s}s${e.cache.authenticated ? ", per caller" : ""}`;
}
