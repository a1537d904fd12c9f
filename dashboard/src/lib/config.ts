// The running config as /api/config gives it (secrets redacted), made readable: unset values
// (null, empty lists and maps) are left out, so what shows is what the file sets; anything not
// shown takes its default (README, Configuration).

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `value` without nulls, empty lists and empty maps, at any depth; `undefined` when nothing is left. */
export function compact(value: unknown): Json | undefined {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) {
    const items = value.map(compact).filter((v): v is Json => v !== undefined);
    return items.length ? items : undefined;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => [k, compact(v)] as const)
      .filter((e): e is readonly [string, Json] => e[1] !== undefined);
    return entries.length ? Object.fromEntries(entries) : undefined;
  }
  return value as Json;
}

function scalar(v: Json): string {
  // Quoted when YAML would read it as something else, or it holds anything but plain characters.
  if (typeof v === "string") return /^[\w./:@-]+$/.test(v) && !/^(true|false|null|~|-?\d+(\.\d+)?)$/i.test(v) ? v : JSON.stringify(v);
  return String(v);
}

/** YAML text of a compacted value (block style, two-space indent). */
export function toYaml(value: Json | undefined, indent = ""): string {
  if (value === undefined) return "";
  if (Array.isArray(value)) {
    return value
      .map((item) => {
        if (item !== null && typeof item === "object") {
          const inner = toYaml(item, `${indent}  `).replace(/^\s+/, "");
          return `${indent}- ${inner}`;
        }
        return `${indent}- ${scalar(item)}\n`;
      })
      .join("");
  }
  if (value !== null && typeof value === "object") {
    return Object.entries(value)
      .map(([k, v]) =>
        v !== null && typeof v === "object" ? `${indent}${k}:\n${toYaml(v, `${indent}  `)}` : `${indent}${k}: ${scalar(v)}\n`,
      )
      .join("");
  }
  return `${indent}${scalar(value)}\n`;
}

/** Whether the running config names a Prometheus for the PromQL page. */
export function prometheusConfigured(config: unknown): boolean {
  const url = (config as { admin?: { prometheus_url?: unknown } } | null)?.admin?.prometheus_url;
  return typeof url === "string" && url.length > 0;
}

/** The cache's store in the running config: `memory` or `redis`; `none` when no route caches. */
export function cacheStore(config: unknown): "memory" | "redis" | "none" {
  const c = config as { cache?: { store?: unknown } | null; routes?: { cache?: { enabled?: boolean } | null }[] } | null;
  if (c?.cache) return c.cache.store === "redis" ? "redis" : "memory";
  // A route may cache without a cache section: the defaults (the memory store) apply.
  return c?.routes?.some((r) => r.cache?.enabled) ? "memory" : "none";
}

/** Where the running config comes from, as `/api/config` and `/api/reload` give it under `source`. */
export type Source =
  | { kind: "file"; path: string }
  | {
      kind: "etcd";
      key: string;
      endpoints: string[];
      revision: number;
      connected: boolean;
      file?: string;
      from_local_copy?: boolean;
      key_deleted?: boolean;
      refused?: { revision: number; problems: { path: string; message: string }[] };
    };

/** The config without its `source`, and the source (if the answer has one). */
export function splitSource(config: unknown): { sections: unknown; source?: Source } {
  if (config === null || typeof config !== "object" || !("source" in config)) return { sections: config };
  const { source, ...sections } = config as { source: Source };
  return { sections, source };
}

/** One line about the source: the file, or the etcd key with the revision running and the watch's state. */
export function describeSource(s: Source): string {
  if (s.kind === "file") return `From the file ${s.path}.`;
  const parts = [`From etcd: ${s.key}, revision ${s.revision}`];
  if (s.file) parts[0] += `, with the local file ${s.file}`;
  parts.push(s.connected ? "watching" : "etcd unreachable, retrying");
  if (s.from_local_copy) parts.push("started from the local copy");
  if (s.key_deleted) parts.push("the key was deleted, the running config stays");
  return `${parts.join("; ")}.`;
}
