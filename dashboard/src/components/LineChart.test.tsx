import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { clock, LineChart } from "./LineChart";

describe("LineChart", () => {
  it("labels its time axis from the first to the last point", () => {
    const t0 = new Date(2026, 0, 2, 10, 0, 0).getTime() / 1000;
    render(
      <LineChart
        title="requests"
        testId="c"
        series={[{ name: "r", color: "#000", points: [[t0, 1], [t0 + 60, 2], [t0 + 120, 3]] }]}
      />,
    );
    expect(screen.getByTestId("c-time").textContent).toBe("10:00:0010:01:0010:02:00");
  });
  it("reads seconds and milliseconds alike", () => {
    const ms = new Date(2026, 0, 2, 23, 59, 58).getTime();
    expect(clock(ms)).toBe("23:59:58");
    expect(clock(ms / 1000)).toBe("23:59:58");
  });
});
