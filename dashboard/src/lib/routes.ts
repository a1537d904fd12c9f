import type { RouteInfo } from "./types";

/** A route's upstream: `v1`, or each upstream with its share for a route that splits its traffic. */
export function upstreamText(r: Pick<RouteInfo, "upstream" | "upstreams">): string {
  if (!r.upstreams) return r.upstream ?? "–";
  const total = r.upstreams.reduce((sum, u) => sum + u.weight, 0) || 1;
  return r.upstreams.map((u) => `${u.name} ${Math.round((u.weight / total) * 1000) / 10}%`).join(" · ");
}
