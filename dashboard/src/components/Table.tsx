import type { ReactNode } from "react";

/** A table that scrolls sideways on narrow screens: column headings and body rows. */
export function Table({ headings, testId, children }: { headings: string[]; testId?: string; children: ReactNode }) {
  return (
    <div className="table-wrap">
      <table data-testid={testId}>
        <thead>
          <tr>
            {headings.map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
