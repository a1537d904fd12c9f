// A small SVG line chart: no library, no inline styles (the admin CSP allows none).

export interface Series {
  name: string;
  /** `[x, y]` points, x ascending (seconds or milliseconds). */
  points: [number, number][];
  color: string;
}

/** Series colours, in the order charts use them. */
export const PALETTE = ["#4e9af1", "#e5534b", "#57ab5a", "#c69026", "#986ee2", "#39c5cf"];

/** The series `name` of `y(item)` over `x(item)`; a missing value (null) leaves a gap. */
export function seriesOf<T>(
  items: T[],
  x: (item: T) => number,
  name: string,
  y: (item: T) => number | null,
  color: string,
): Series {
  return { name, color, points: items.map((i) => [x(i), y(i) ?? NaN]) };
}

interface Props {
  title: string;
  series: Series[];
  unit?: string;
  height?: number;
  testId?: string;
}

const WIDTH = 600;

function format(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "–";
  const abs = Math.abs(v);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${unit}`;
}

/** `HH:MM:SS` of `x`, in seconds or (past the year 5138) milliseconds since the epoch. */
export function clock(x: number): string {
  const d = new Date(x > 1e11 ? x : x * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

export function LineChart({ title, series, unit = "", height = 160, testId }: Props) {
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]).filter(Number.isFinite);
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const yMax = ys.length ? Math.max(...ys, 0) : 1;
  const top = yMax > 0 ? yMax * 1.1 : 1;
  const pad = 4;
  const sx = (x: number) => (x1 === x0 ? WIDTH / 2 : ((x - x0) / (x1 - x0)) * (WIDTH - 2 * pad) + pad);
  const sy = (y: number) => height - pad - (y / top) * (height - 2 * pad);
  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>
        <span>{title}</span>
        <span className="legend">
          {series.map((s) => {
            const last = s.points[s.points.length - 1];
            return (
              <span key={s.name} className="legend-item">
                <svg width="10" height="10" aria-hidden="true">
                  <rect width="10" height="10" fill={s.color} />
                </svg>
                {s.name} {last ? format(last[1], unit) : "–"}
              </span>
            );
          })}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${height}`} preserveAspectRatio="none" role="img" aria-label={title}>
        <line x1={0} x2={WIDTH} y1={height - pad} y2={height - pad} className="axis" />
        <text x={WIDTH - 2} y={12} textAnchor="end" className="tick">
          {format(top, unit)}
        </text>
        {series.map((s) => (
          <polyline
            key={s.name}
            data-series={s.name}
            fill="none"
            stroke={s.color}
            strokeWidth={2}
            vectorEffect="non-scaling-stroke"
            points={s.points
              .filter((p) => Number.isFinite(p[1]))
              .map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
              .join(" ")}
          />
        ))}
      </svg>
      {xs.length > 0 && (
        <div className="time-axis" data-testid={testId ? `${testId}-time` : undefined}>
          <span>{clock(x0)}</span>
          <span>{clock((x0 + x1) / 2)}</span>
          <span>{clock(x1)}</span>
        </div>
      )}
    </figure>
  );
}
