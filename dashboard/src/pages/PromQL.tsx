import { useEffect, useState, type FormEvent } from "react";
import { LineChart, PALETTE } from "../components/LineChart";
import { useNotify, useReportError } from "../components/Snackbar";
import { useServices } from "../context";
import type { PromAnswer, PromSeries } from "../lib/api";
import { prometheusConfigured } from "../lib/config";

const HISTORY_KEY = "gw.promql.history";

function loadHistory(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]") as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string").slice(0, 10) : [];
  } catch {
    return [];
  }
}

function labelsOf(metric: Record<string, string>): string {
  const { __name__: name = "", ...rest } = metric;
  const inner = Object.entries(rest)
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
  return `${name}{${inner}}`;
}

export function PromQL() {
  const { api } = useServices();
  const notify = useNotify();
  const report = useReportError();
  const [query, setQuery] = useState("sum(rate(http_requests_total[1m]))");
  const [range, setRange] = useState(false);
  const [minutes, setMinutes] = useState(15);
  const [answer, setAnswer] = useState<PromAnswer | null>(null);
  const [history, setHistory] = useState<string[]>(loadHistory);
  const [busy, setBusy] = useState(false);
  // Whether the running config names a Prometheus: said before anything is run.
  const [configured, setConfigured] = useState<boolean | null>(null);
  useEffect(() => {
    api.json<unknown>("/api/config").then(
      (c) => setConfigured(prometheusConfigured(c)),
      (e: unknown) => report("Config", e),
    );
  }, [api, report]);

  const run = async (q: string) => {
    setBusy(true);
    try {
      const params = new URLSearchParams({ query: q });
      let path = `/api/promql?${params}`;
      if (range) {
        const end = Math.floor(Date.now() / 1000);
        const start = end - minutes * 60;
        const stepSeconds = Math.max(1, Math.round((minutes * 60) / 240));
        params.set("start", String(start));
        params.set("end", String(end));
        params.set("step", String(stepSeconds));
        path = `/api/promql/range?${params}`;
      }
      const a = await api.promql(path);
      setAnswer(a);
      if (a.status === "error") notify(`Prometheus: ${a.error ?? "error"}`, "error");
      const next = [q, ...history.filter((h) => h !== q)].slice(0, 10);
      setHistory(next);
      localStorage.setItem(HISTORY_KEY, JSON.stringify(next));
    } catch (e) {
      report("", e);
      setAnswer(null);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run(query);
  };

  const result = answer?.status === "success" ? answer.data : undefined;
  const series = Array.isArray(result?.result) && result?.resultType !== "scalar" ? (result.result as PromSeries[]) : [];
  return (
    <section>
      <h2>PromQL</h2>
      {configured === false && (
        <p className="notice" role="status" data-testid="promql-off">
          No Prometheus is configured: set <code>admin.prometheus_url</code> to the Prometheus that scrapes this
          gateway&apos;s metrics listener, then reload. (<code>make run</code> starts one when Prometheus is
          installed.)
        </p>
      )}
      <form className="promql" onSubmit={submit}>
        <textarea aria-label="Query" value={query} onChange={(e) => setQuery(e.target.value)} rows={2} />
        <div className="row">
          <label>
            <input type="checkbox" checked={range} onChange={(e) => setRange(e.target.checked)} /> Range
          </label>
          {range && (
            <label>
              last{" "}
              <select value={minutes} onChange={(e) => setMinutes(Number(e.target.value))}>
                {[5, 15, 60, 180].map((m) => (
                  <option key={m} value={m}>
                    {m} min
                  </option>
                ))}
              </select>
            </label>
          )}
          <button type="submit" disabled={busy || configured !== true}>
            Run
          </button>
        </div>
      </form>
      {history.length > 0 && (
        <div className="history" aria-label="Recent queries">
          {history.map((h) => (
            <button type="button" key={h} className="chip" onClick={() => setQuery(h)}>
              {h}
            </button>
          ))}
        </div>
      )}
      {answer?.status === "error" && (
        <p className="error" role="alert">
          {answer.errorType}: {answer.error}
        </p>
      )}
      {result?.resultType === "matrix" && (
        <LineChart
          title={query}
          testId="promql-chart"
          series={series.map((s, i) => ({
            name: labelsOf(s.metric),
            color: PALETTE[i % PALETTE.length],
            points: (s.values ?? []).map(([t, v]) => [t, Number(v)] as [number, number]),
          }))}
        />
      )}
      {result && (
        <div className="table-wrap">
          <table data-testid="promql-table">
            <thead>
              <tr>
                <th>Series</th>
                <th>Value</th>
              </tr>
            </thead>
            <tbody>
              {result.resultType === "scalar" || result.resultType === "string" ? (
                <tr>
                  <td>{result.resultType}</td>
                  <td>{String((result.result as [number, string])[1])}</td>
                </tr>
              ) : (
                series.map((s) => {
                  const last = s.value ?? s.values?.[s.values.length - 1];
                  return (
                    <tr key={labelsOf(s.metric)}>
                      <td>{labelsOf(s.metric)}</td>
                      <td>{last ? last[1] : "–"}</td>
                    </tr>
                  );
                })
              )}
            </tbody>
          </table>
          {series.length === 0 && result.resultType !== "scalar" && <p className="note">No series.</p>}
        </div>
      )}
    </section>
  );
}
