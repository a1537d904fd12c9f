// Rates and quantiles computed in the browser from two scrapes of /api/metrics, the way PromQL's
// rate() and histogram_quantile() do.

import type { Labels, Sample } from "./exposition";

export interface Scrape {
  /** Milliseconds since the epoch. */
  at: number;
  samples: Sample[];
}

function matches(labels: Labels, filter: Labels): boolean {
  return Object.entries(filter).every(([k, v]) => labels[k] === v);
}

function key(labels: Labels, by: string[]): string {
  return by.map((l) => labels[l] ?? "").join("\u0000");
}

/**
 * Per-second increase of counter `name` between two scrapes, summed by the labels in `by`
 * (all series together when empty). A series that went down was reset: its new value counts.
 */
export function rateBy(
  prev: Scrape,
  curr: Scrape,
  name: string,
  by: string[] = [],
  filter: Labels = {},
): Map<string, number> {
  const seconds = (curr.at - prev.at) / 1000;
  const out = new Map<string, number>();
  if (seconds <= 0) return out;
  const before = new Map<string, number>();
  for (const s of prev.samples) {
    if (s.name === name && matches(s.labels, filter)) before.set(JSON.stringify(s.labels), s.value);
  }
  for (const s of curr.samples) {
    if (s.name !== name || !matches(s.labels, filter)) continue;
    const old = before.get(JSON.stringify(s.labels)) ?? 0;
    const increase = s.value >= old ? s.value - old : s.value;
    const k = key(s.labels, by);
    out.set(k, (out.get(k) ?? 0) + increase / seconds);
  }
  return out;
}

/** The per-second rate of `name` over every series matching `filter`. */
export function rate(prev: Scrape, curr: Scrape, name: string, filter: Labels = {}): number {
  let total = 0;
  for (const v of rateBy(prev, curr, name, [], filter).values()) total += v;
  return total;
}

export interface Bucket {
  le: number;
  count: number;
}

/** The buckets of histogram `name` (cumulative), increase between two scrapes, summed over series. */
export function bucketIncrease(prev: Scrape, curr: Scrape, name: string, filter: Labels = {}): Bucket[] {
  const inc = rateBy(prev, curr, `${name}_bucket`, ["le"], filter);
  const seconds = (curr.at - prev.at) / 1000;
  return [...inc.entries()]
    .map(([le, perSecond]) => ({ le: le === "+Inf" ? Infinity : Number(le), count: perSecond * seconds }))
    .sort((a, b) => a.le - b.le);
}

/**
 * The `q` quantile of cumulative `buckets`, interpolated linearly within the bucket it falls in;
 * past the last finite bound, that bound. `null` without observations.
 */
export function histogramQuantile(q: number, buckets: Bucket[]): number | null {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1].count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = { le: 0, count: 0 };
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lower.le;
      const inBucket = b.count - lower.count;
      const within = inBucket > 0 ? (rank - lower.count) / inBucket : 1;
      return lower.le + (b.le - lower.le) * within;
    }
    lower = b;
  }
  return lower.le;
}
