import { useEffect, useState } from "react";
import { useReportError } from "../components/Snackbar";
import { Table } from "../components/Table";
import { useServices } from "../context";
import { upstreamText } from "../lib/routes";
import type { RouteInfo } from "../lib/types";

interface RoutesAnswer {
  routes: RouteInfo[];
  groups: Record<string, { prefix: string; auth?: RouteInfo["auth"]; rate_limit?: unknown }>;
}

function auth(a: RouteInfo["auth"]): string {
  if (!a) return "inherited";
  const roles = a.roles?.length ? ` (${a.roles.join(", ")})` : "";
  return a.required === false ? "open" : a.required || roles ? `required${roles}` : "inherited";
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
      <Table headings={["Name", "Prefix", "Methods", "Upstream", "Group", "Auth", "Rate limit", "Cache"]}>
        {data.routes.map((r) => (
          <tr key={r.name}>
            <td>{r.name}</td>
            <td>
              <code>{r.prefix ?? r.path}</code>
              {r.strip_prefix ? " (stripped)" : ""}
            </td>
            <td>{r.methods?.join(", ") ?? "any"}</td>
            <td>{upstreamText(r)}</td>
            <td>{r.group ?? "–"}</td>
            <td>{auth(r.auth)}</td>
            <td>{r.rate_limit ? JSON.stringify(r.rate_limit) : "inherited"}</td>
            <td>{r.cache?.enabled ? `on${r.cache.ttl ? `, ${r.cache.ttl}` : ""}` : "off"}</td>
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
                <td>{auth(g.auth ?? null)}</td>
                <td>{g.rate_limit ? JSON.stringify(g.rate_limit) : "–"}</td>
              </tr>
            ))}
          </Table>
        </>
      )}
    </section>
  );
}
