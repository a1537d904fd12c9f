import { useEffect, useState } from "react";
import { useReportError } from "../components/Snackbar";
import { Table } from "../components/Table";
import { useServices } from "../context";
import { authText, cacheText, limitDetail, limitText, upstreamText } from "../lib/routes";
import type { RouteInfo } from "../lib/types";

interface RoutesAnswer {
  routes: RouteInfo[];
  groups: Record<string, { prefix: string; auth?: RouteInfo["auth"]; rate_limit?: unknown }>;
}

/** A group's own auth setting, as written (its routes show what applies). */
function groupAuth(a: RouteInfo["auth"]): string {
  if (!a) return "–";
  const roles = a.roles?.length ? ` (${a.roles.join(", ")})` : "";
  return a.required === false ? "open" : a.required || roles ? `required${roles}` : "–";
}

export function RoutesPage() {
  const { api } = useServices();
  const report = useReportError();
  const [data, setData] = useState<RoutesAnswer | null>(null);
  useEffect(() => {
    api.json<RoutesAnswer>("/api/routes").then(setData, (e: unknown) => report("Routes", e));
  }, [api, report]);
  if (!data) return <p>Loading…</p>;
  return (
    <section>
      <h2>Routes</h2>
      <p className="note">Auth, rate limit and cache as they apply: group and global settings merged, defaults filled in.</p>
      <Table headings={["Name", "Prefix", "Methods", "Upstream", "Group", "Auth", "Rate limit", "Cache"]}>
        {data.routes.map((r) => (
          <tr key={r.name} data-testid={`route-${r.name}`}>
            <td>{r.name}</td>
            <td>
              <code>{r.prefix ?? r.path}</code>
              {r.strip_prefix ? " (stripped)" : ""}
            </td>
            <td>{r.methods?.join(", ") ?? "any"}</td>
            <td>{upstreamText(r)}</td>
            <td>{r.group ?? "–"}</td>
            <td data-testid="auth">{authText(r.effective)}</td>
            <td data-testid="rate-limit">
              {limitText(r.effective)}
              {limitDetail(r.effective) && (
                <>
                  <br />
                  <small className="note">{limitDetail(r.effective)}</small>
                </>
              )}
            </td>
            <td data-testid="cache">{cacheText(r.effective)}</td>
          </tr>
        ))}
      </Table>
      {Object.keys(data.groups).length > 0 && (
        <>
          <h3>Groups</h3>
          <Table headings={["Name", "Prefix", "Auth", "Rate limit"]}>
            {Object.entries(data.groups).map(([name, g]) => (
              <tr key={name}>
                <td>{name}</td>
                <td>
                  <code>{g.prefix}</code>
                </td>
                <td>{groupAuth(g.auth ?? null)}</td>
                <td>{g.rate_limit ? JSON.stringify(g.rate_limit) : "–"}</td>
              </tr>
            ))}
          </Table>
        </>
      )}
    </section>
  );
}
