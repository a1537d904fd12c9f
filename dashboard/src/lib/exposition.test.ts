import { describe, expect, it } from "vitest";
import { parseExposition } from "./exposition";

describe("parseExposition", () => {
  it("reads names, labels with escapes, special values and skips comments", () => {
    const text = [
      "# HELP http_requests_total Requests",
      "# TYPE http_requests_total counter",
      'http_requests_total{method="GET",route="users",status="200"} 42',
      'weird{path="a\\"b\\\\c\\nd",x="1"} 1.5e3 1700000000000',
      'http_request_duration_seconds_bucket{le="+Inf",route="r"} +Inf',
      "active_connections 3",
      "nan_gauge NaN",
      "",
      "broken{a=1} 2",
      "no_value",
    ].join("\n");
    const s = parseExposition(text);
    expect(s).toHaveLength(5);
    expect(s[0]).toEqual({
      name: "http_requests_total",
      labels: { method: "GET", route: "users", status: "200" },
      value: 42,
    });
    expect(s[1].labels.path).toBe('a"b\\c\nd');
    expect(s[1].value).toBe(1500);
    expect(s[2].value).toBe(Infinity);
    expect(s[3]).toEqual({ name: "active_connections", labels: {}, value: 3 });
    expect(Number.isNaN(s[4].value)).toBe(true);
  });

  it("keeps a label value containing braces and commas", () => {
    const [s] = parseExposition('m{q="{a,b}",z="}"} 7');
    expect(s.labels).toEqual({ q: "{a,b}", z: "}" });
    expect(s.value).toBe(7);
  });
});
