import { describe, expect, it } from "vitest";
import { parseExposition } from "./exposition";
import { bucketIncrease, histogramQuantile, rate, rateBy, type Scrape } from "./rates";

const scrape = (at: number, text: string): Scrape => ({ at, samples: parseExposition(text) });

describe("rates", () => {
  const a = scrape(
    0,
    `http_requests_total{route="a",status="200"} 100
http_requests_total{route="b",status="500"} 10
http_requests_total{route="c",status="200"} 50`,
  );
  const b = scrape(
    2000,
    `http_requests_total{route="a",status="200"} 120
http_requests_total{route="b",status="500"} 14
http_requests_total{route="c",status="200"} 6
http_requests_total{route="d",status="200"} 2`,
  );

  it("is the per-second increase, with resets and new series counted from zero", () => {
    // a: +20, b: +4, c: reset to 6 → +6, d: new → +2; over 2 s.
    expect(rate(a, b, "http_requests_total")).toBe(16);
    expect(rate(a, b, "http_requests_total", { status: "500" })).toBe(2);
    const byStatus = rateBy(a, b, "http_requests_total", ["status"]);
    expect(byStatus.get("200")).toBe(14);
    expect(byStatus.get("500")).toBe(2);
  });

  it("is empty when no time passed", () => {
    expect(rate(a, a, "http_requests_total")).toBe(0);
  });
});

describe("histogramQuantile", () => {
  it("interpolates within the bucket like PromQL", () => {
    const buckets = [
      { le: 0.01, count: 50 },
      { le: 0.1, count: 90 },
      { le: 1, count: 100 },
      { le: Infinity, count: 100 },
    ];
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.01);
    expect(histogramQuantile(0.95, buckets)).toBeCloseTo(0.55);
    expect(histogramQuantile(0.25, buckets)).toBeCloseTo(0.005);
    expect(histogramQuantile(0.5, [{ le: Infinity, count: 0 }])).toBeNull();
    expect(histogramQuantile(0.5, [])).toBeNull();
  });

  it("answers the last finite bound past it", () => {
    const buckets = [
      { le: 0.1, count: 1 },
      { le: Infinity, count: 10 },
    ];
    expect(histogramQuantile(0.99, buckets)).toBe(0.1);
  });

  it("works on bucket increases between scrapes, summed over series", () => {
    const before = scrape(
      0,
      `d_bucket{le="0.1",route="a"} 10
d_bucket{le="1",route="a"} 10
d_bucket{le="+Inf",route="a"} 10
d_bucket{le="0.1",route="b"} 0
d_bucket{le="1",route="b"} 0
d_bucket{le="+Inf",route="b"} 0`,
    );
    const after = scrape(
      1000,
      `d_bucket{le="0.1",route="a"} 14
d_bucket{le="1",route="a"} 18
d_bucket{le="+Inf",route="a"} 18
d_bucket{le="0.1",route="b"} 0
d_bucket{le="1",route="b"} 2
d_bucket{le="+Inf",route="b"} 2`,
    );
    const buckets = bucketIncrease(before, after, "d");
    expect(buckets.map((b) => [b.le, Math.round(b.count)])).toEqual([
      [0.1, 4],
      [1, 10],
      [Infinity, 10],
    ]);
    // Rank 5 of 10 falls in (0.1, 1]: 0.1 + 0.9 × 1/6.
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.25);
  });
});
