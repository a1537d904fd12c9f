import { useCallback, useEffect, useState } from "react";
import { useNotify, useReportError } from "../components/Snackbar";
import { useServices } from "../context";
import { ApiError, type Problem } from "../lib/api";
import { compact, describeSource, splitSource, toYaml } from "../lib/config";
import type { Changes } from "../lib/types";

function describe(c: Changes): string {
  if (c.sections.length === 0) return "Reloaded: nothing changed.";
  const parts = [`Reloaded: ${c.sections.join(", ")} changed.`];
  for (const [what, named] of [
    ["routes", c.routes],
    ["upstreams", c.upstreams],
  ] as const) {
    for (const [verb, list] of Object.entries(named)) {
      if (list.length) parts.push(`${what} ${verb}: ${list.join(", ")}.`);
    }
  }
  if (c.need_restart.length) parts.push(`Needs a restart: ${c.need_restart.join(", ")}.`);
  return parts.join(" ");
}

export function ConfigPage() {
  const { api } = useServices();
  const notify = useNotify();
  const report = useReportError();
  const [config, setConfig] = useState<unknown>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [busy, setBusy] = useState(false);
  const load = useCallback(async () => {
    try {
      setConfig(await api.json<unknown>("/api/config"));
    } catch (e) {
      report("Config", e);
    }
  }, [api, report]);
  useEffect(() => {
    void load();
  }, [load]);
  const reload = async () => {
    setBusy(true);
    try {
      const r = await api.post<{ changes: Changes }>("/api/reload");
      setProblems([]);
      notify(describe(r.changes), "success");
      await load();
    } catch (e) {
      setProblems(e instanceof ApiError ? e.problems : []);
      report("Reload refused", e);
    } finally {
      setBusy(false);
    }
  };
  const { sections, source } = splitSource(config);
  const refused = source?.kind === "etcd" ? source.refused : undefined;
  return (
    <section>
      <h2>Config</h2>
      {source && (
        <p className="note" data-testid="config-source">
          {describeSource(source)}
        </p>
      )}
      {refused && (
        <div className="problems" role="alert" data-testid="refused">
          <h3>
            etcd revision {refused.revision} was refused ({refused.problems.length} problem(s)); the running config
            stays
          </h3>
          <ul>
            {refused.problems.map((p) => (
              <li key={`${p.path}: ${p.message}`}>
                <code>{p.path}</code>: {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <p className="row">
        <button type="button" onClick={() => void reload()} disabled={busy}>
          Reload
        </button>
        <span className="note">
          Re-reads the config file (with the etcd document running, when the config comes from etcd); a file with
          problems keeps the running config.
        </span>
      </p>
      {problems.length > 0 && (
        <div className="problems" role="alert" data-testid="problems">
          <h3>The file has {problems.length} problem(s); the running config stays</h3>
          <ul>
            {problems.map((p) => (
              <li key={`${p.path}: ${p.message}`}>
                <code>{p.path}</code>: {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <p className="note">
        The running config as YAML: what the file sets, with the defaults the gateway filled in where a section
        has them; a key not shown takes its default (README, Configuration). Secrets, hashes and URL
        credentials are redacted. Each route's effective auth, rate limit and cache are on the Routes page.
      </p>
      <pre className="config" data-testid="config">
        {config === null ? "Loading…" : toYaml(compact(sections))}
      </pre>
    </section>
  );
}
