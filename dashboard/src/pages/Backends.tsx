import { useCallback, useState } from "react";
import { useReportError } from "../components/Snackbar";
import { Table } from "../components/Table";
import { useServices } from "../context";
import { usePoll } from "../lib/hooks";
import type { Upstream } from "../lib/types";

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s ago` : `${Math.round(s / 60)}m ago`;
}

export function Backends() {
  const { api } = useServices();
  const report = useReportError();
  const [upstreams, setUpstreams] = useState<Upstream[] | null>(null);
  const poll = useCallback(async () => {
    try {
      setUpstreams((await api.json<{ upstreams: Upstream[] }>("/api/upstreams")).upstreams);
    } catch (e) {
      report("Upstreams", e);
    }
  }, [api, report]);
  usePoll(poll, 2000);
  if (!upstreams) return <p>Loading…</p>;
  return (
    <section>
      <h2>Backends</h2>
      {upstreams.map((u) => (
        <div key={u.name} className="card" data-testid={`upstream-${u.name}`}>
          <h3>
            {u.name} <small>{u.strategy}</small>{" "}
            <span className={u.healthy === u.total ? "badge ok" : u.healthy ? "badge warn" : "badge down"}>
              {u.healthy}/{u.total} healthy
            </span>{" "}
            {u.circuit && (
              <span className={u.circuit === "closed" ? "badge ok" : u.circuit === "open" ? "badge down" : "badge warn"}>
                circuit {u.circuit.replace("_", "-")}
              </span>
            )}
          </h3>
          <Table headings={["Backend", "Address", "Weight", "Health", "In flight", "Requests", "Failures", "Last check"]}>
            {u.backends.map((b) => (
              <tr key={b.addr} data-testid={`backend-${b.addr}`}>
                <td>{b.name ?? "–"}</td>
                <td>{b.addr}</td>
                <td>{b.weight}</td>
                <td>
                  <span className={b.healthy ? "badge ok" : "badge down"} data-testid="health">
                    {b.healthy ? "healthy" : "unhealthy"}
                  </span>
                  {b.ejected && (
                    <span className="badge warn" title="Out of picks for now: its requests kept failing">
                      ejected
                    </span>
                  )}
                </td>
                <td>{b.active_connections}</td>
                <td>{b.requests_total}</td>
                <td>{b.failures_total}</td>
                <td title={b.last_check?.error}>
                  {b.last_check ? `${b.last_check.ok ? "passed" : "failed"} ${ago(b.last_check.at_ms)}` : "–"}
                </td>
              </tr>
            ))}
          </Table>
        </div>
      ))}
    </section>
  );
}
