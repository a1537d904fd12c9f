import { useCallback, useState } from "react";
import { LineChart, PALETTE, seriesOf } from "../components/LineChart";
import { useReportError } from "../components/Snackbar";
import { useServices } from "../context";
import { usePoll } from "../lib/hooks";
import type { History, Second } from "../lib/types";

const KEEP = 900;

/** Averages over the last `n` seconds. */
function recent(seconds: Second[], n = 10) {
  const last = seconds.slice(-n);
  const sum = (f: (s: Second) => number) => last.reduce((a, s) => a + f(s), 0);
  const requests = sum((s) => s.requests);
  const p95s = last.map((s) => s.p95_ms).filter((v): v is number => v !== null);
  const ratios = last.map((s) => s.cache_hit_ratio).filter((v): v is number => v !== null);
  return {
    rps: last.length ? requests / last.length : 0,
    errorRate: requests ? (sum((s) => s.errors_5xx) / requests) * 100 : 0,
    p95: p95s.length ? Math.max(...p95s) : null,
    hitRatio: ratios.length ? (ratios.reduce((a, b) => a + b, 0) / ratios.length) * 100 : null,
    limited: last.length ? sum((s) => s.rate_limited) / last.length : 0,
  };
}

export function Overview() {
  const { api } = useServices();
  const report = useReportError();
  const [seconds, setSeconds] = useState<Second[]>([]);
  const poll = useCallback(async () => {
    try {
      const since = seconds.length ? seconds[seconds.length - 1].t : 0;
      const h = await api.json<History>(`/api/stats/history?since=${since}`);
      if (h.seconds.length) setSeconds((old) => [...old, ...h.seconds].slice(-KEEP));
    } catch (e) {
      report("History", e);
    }
  }, [api, report, seconds]);
  usePoll(poll, 2000);

  const now = recent(seconds);
  const line = (name: string, f: (s: Second) => number | null, color: string) =>
    seriesOf(seconds, (s) => s.t, name, f, color);
  const upstreams = [...new Set(seconds.flatMap((s) => Object.keys(s.upstreams)))];
  return (
    <section>
      <h2>Overview</h2>
      <div className="tiles">
        <Tile label="Requests/s" value={now.rps.toFixed(1)} testId="tile-rps" />
        <Tile label="5xx" value={`${now.errorRate.toFixed(1)}%`} />
        <Tile label="p95 latency" value={now.p95 === null ? "–" : `${now.p95.toFixed(1)} ms`} />
        <Tile label="Cache hits" value={now.hitRatio === null ? "–" : `${now.hitRatio.toFixed(0)}%`} />
        <Tile label="Rate-limited/s" value={now.limited.toFixed(1)} />
      </div>
      <div className="charts">
        <LineChart
          title="Requests per second"
          testId="chart-requests"
          series={[
            line("requests", (s) => s.requests, PALETTE[0]),
            line("4xx", (s) => s.errors_4xx, PALETTE[3]),
            line("5xx", (s) => s.errors_5xx, PALETTE[1]),
          ]}
        />
        <LineChart
          title="Latency"
          unit=" ms"
          series={[
            line("p50", (s) => s.p50_ms, PALETTE[2]),
            line("p95", (s) => s.p95_ms, PALETTE[3]),
            line("p99", (s) => s.p99_ms, PALETTE[1]),
          ]}
        />
        <LineChart
          title="Cache hit ratio"
          unit="%"
          series={[line("hits", (s) => (s.cache_hit_ratio === null ? null : s.cache_hit_ratio * 100), PALETTE[4])]}
        />
        <LineChart
          title="Upstream requests per second"
          series={upstreams.map((u, i) => line(u, (s) => s.upstreams[u]?.requests ?? 0, PALETTE[i % PALETTE.length]))}
        />
      </div>
    </section>
  );
}

function Tile({ label, value, testId }: { label: string; value: string; testId?: string }) {
  return (
    <div className="tile" data-testid={testId}>
      <span className="tile-label">{label}</span>
      <span className="tile-value">{value}</span>
    </div>
  );
}
