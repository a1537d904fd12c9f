// Prometheus text exposition format (0.0.4): the samples of one scrape.

export type Labels = Record<string, string>;

export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/** Parses exposition text; comment and malformed lines are skipped. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseLine(line: string): Sample | null {
  const nameEnd = line.search(/[{\s]/);
  if (nameEnd <= 0) return null;
  const name = line.slice(0, nameEnd);
  let rest = line.slice(nameEnd);
  const labels: Labels = {};
  if (rest.startsWith("{")) {
    const parsed = parseLabels(rest);
    if (!parsed) return null;
    Object.assign(labels, parsed.labels);
    rest = rest.slice(parsed.end);
  }
  const fields = rest.trim().split(/\s+/);
  const value = parseValue(fields[0] ?? "");
  if (value === null) return null;
  return { name, labels, value };
}

/** `{a="x",b="y\"z"}` → labels and the index just past `}`. */
function parseLabels(s: string): { labels: Labels; end: number } | null {
  const labels: Labels = {};
  let i = 1;
  while (i < s.length) {
    while (s[i] === " " || s[i] === ",") i++;
    if (s[i] === "}") return { labels, end: i + 1 };
    const eq = s.indexOf("=", i);
    if (eq < 0 || s[eq + 1] !== '"') return null;
    const key = s.slice(i, eq).trim();
    let value = "";
    let j = eq + 2;
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === "\\" && j + 1 < s.length) {
        j++;
        value += s[j] === "n" ? "\n" : s[j];
      } else {
        value += s[j];
      }
    }
    if (j >= s.length) return null;
    labels[key] = value;
    i = j + 1;
  }
  return null;
}

function parseValue(v: string): number | null {
  if (v === "+Inf" || v === "Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  if (v === "NaN") return NaN;
  if (v === "" || !/^[-+]?[0-9.eE+-]+$/.test(v)) return null;
  const n = Number(v);
  return Number.isNaN(n) ? null : n;
}
