import { describe, expect, it } from "vitest";
import { upstreamText } from "./routes";

describe("upstreamText", () => {
  it("names the one upstream", () => {
    expect(upstreamText({ upstream: "users" })).toBe("users");
  });
  it("gives each side of a split its share", () => {
    const upstreams = [
      { name: "v1", weight: 19 },
      { name: "v2", weight: 1 },
    ];
    expect(upstreamText({ upstreams })).toBe("v1 95% · v2 5%");
    expect(upstreamText({ upstreams: [{ name: "a", weight: 1 }, { name: "b", weight: 2 }] })).toBe(
      "a 33.3% · b 66.7%",
    );
  });
});
