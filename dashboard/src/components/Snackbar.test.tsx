import { act, render, screen } from "@testing-library/react";
import { useEffect } from "react";
import { describe, expect, it } from "vitest";
import { ApiError } from "../lib/api";
import { SnackbarProvider, useReportError } from "./Snackbar";

function Failing({ errors }: { errors: unknown[] }) {
  const report = useReportError();
  useEffect(() => {
    for (const e of errors) report("Upstreams", e);
  }, [errors, report]);
  return null;
}

describe("error reports", () => {
  it("show API and network failures once each, and nothing for a 401", () => {
    const errors = [
      new ApiError(401, "invalid_token", "Your session ended"),
      new TypeError("Failed to fetch"),
      new TypeError("Failed to fetch"),
      new ApiError(503, "store_unavailable", "The token store is unavailable"),
    ];
    render(
      <SnackbarProvider>
        <Failing errors={errors} />
      </SnackbarProvider>,
    );
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("Upstreams: Failed to fetch");
    expect(alert.textContent).toContain("+1");
    act(() => screen.getByRole("button", { name: "Dismiss" }).click());
    expect(screen.getByRole("alert").textContent).toContain("Upstreams: The token store is unavailable");
    act(() => screen.getByRole("button", { name: "Dismiss" }).click());
    expect(screen.queryByRole("alert")).toBeNull();
  });
});
