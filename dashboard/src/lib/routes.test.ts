import { describe, expect, it } from "vitest";
import { authText, cacheText, limitDetail, limitText, upstreamText } from "./routes";
import type { Effective } from "./types";

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

const open: Effective = { auth: null, rate_limit: null, ip_rules: false, max_body_size: null, cache: null };

describe("effective policy", () => {
  it("says open, none and off where nothing applies", () => {
    expect(authText(open)).toBe("open");
    expect(limitText(open)).toBe("none");
    expect(cacheText(open)).toBe("off");
  });
  it("names the roles, the limit and the caching that apply", () => {
    const e: Effective = {
      ...open,
      auth: { roles: ["user"] },
      rate_limit: {
        algorithm: "token_bucket",
        rate: "50/1s",
        burst: 100,
        key: ["client_ip", "user"],
        store: "memory",
        on_store_error: "allow",
      },
      cache: { ttl_s: 45, authenticated: true },
    };
    expect(authText(e)).toBe("token, roles: user");
    expect(authText({ ...e, auth: { roles: [] } })).toBe("token");
    expect(limitText(e)).toBe("50/1s, burst 100");
    expect(limitDetail(e)).toBe("per client_ip + user · memory");
    expect(limitDetail(open)).toBe("");
    const window = { ...e.rate_limit!, algorithm: "sliding_window" as const, burst: null };
    expect(limitText({ ...e, rate_limit: window })).toBe("50/1s, sliding window");
    expect(cacheText(e)).toBe("on, 45s, per caller");
  });
});
