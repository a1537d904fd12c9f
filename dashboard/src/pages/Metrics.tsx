import { useCallback, useState } from "react";
import { LineChart, PALETTE, seriesOf } from "../components/LineChart";
import { useReportError } from "../components/Snackbar";
import { useServices } from "../context";
import { parseExposition } from "../lib/exposition";
import { usePoll } from "../lib/hooks";
import { bucketIncrease, histogramQuantile, rate, rateBy, type Scrape } from "../lib/rates";

const KEEP = 150;

interface Point {
  t: number;
  rps: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  inFlight: number;
  byUpstream: Map<string, number>;
}

/** What happened between two scrapes. */
export function step(prev: Scrape, curr: Scrape): Point {
  const buckets = bucketIncrease(prev, curr, "http_request_duration_seconds");
  const q = (x: number) => {
    const v = histogramQuantile(x, buckets);
    return v === null ? null : v * 1000;
  };
  let errors = 0;
  for (const [status, v] of rateBy(prev, curr, "http_requests_total", ["status"])) {
    if (status.startsWith("5")) errors += v;
  }
  const gauge = curr.samples.find((s) => s.name === "active_connections");
  return {
    t: curr.at,
    rps: rate(prev, curr, "http_requests_total"),
    errors,
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    inFlight: gauge?.value ?? 0,
    byUpstream: rateBy(prev, curr, "backend_requests_total", ["upstream"]),
  };
}

export function MetricsPage() {
  const { api } = useServices();
  const report = useReportError();
  const [last, setLast] = useState<Scrape | null>(null);
  const [points, setPoints] = useState<Point[]>([]);
  const poll = useCallback(async () => {
    try {
      const text = await api.text("/api/metrics");
      const scrape = { at: Date.now(), samples: parseExposition(text) };
      if (last) {
        const p = step(last, scrape);
        setPoints((old) => [...old, p].slice(-KEEP));
      }
      setLast(scrape);
    } catch (e) {
      report("Metrics", e);
    }
  }, [api, report, last]);
  usePoll(poll, 2000);

  const line = (name: string, f: (p: Point) => number | null, color: string) =>
    seriesOf(points, (p) => p.t, name, f, color);
  const upstreams = [...new Set(points.flatMap((p) => [...p.byUpstream.keys()]))];
  return (
    <section>
      <h2>Metrics</h2>
      <p className="note">Computed in the browser from successive scrapes of the gateway's metrics, every 2 s.</p>
      <div className="charts">
        <LineChart
          title="Requests per second"
          testId="metrics-rps"
          series={[line("all", (p) => p.rps, PALETTE[0]), line("5xx", (p) => p.errors, PALETTE[1])]}
        />
        <LineChart
          title="Latency quantiles"
          unit=" ms"
          testId="metrics-latency"
          series={[
            line("p50", (p) => p.p50, PALETTE[2]),
            line("p95", (p) => p.p95, PALETTE[3]),
            line("p99", (p) => p.p99, PALETTE[1]),
          ]}
        />
        <LineChart title="Requests in flight" series={[line("in flight", (p) => p.inFlight, PALETTE[4])]} />
        <LineChart
          title="Backend requests per second"
          series={upstreams.map((u, i) => line(u, (p) => p.byUpstream.get(u) ?? 0, PALETTE[i % PALETTE.length]))}
        />
      </div>
    </section>
  );
}
