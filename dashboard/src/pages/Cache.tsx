import { useEffect, useState, type FormEvent } from "react";
import { useNotify, useReportError } from "../components/Snackbar";
import { useServices } from "../context";
import { cacheStore } from "../lib/config";

export function CachePage() {
  const { api } = useServices();
  const notify = useNotify();
  const report = useReportError();
  const [mode, setMode] = useState<"url" | "prefix">("url");
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const [store, setStore] = useState<"memory" | "redis" | "none" | null>(null);
  useEffect(() => {
    api.json<unknown>("/api/config").then(
      (c) => setStore(cacheStore(c)),
      (e: unknown) => report("Config", e),
    );
  }, [api, report]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      const r = await api.post<{ purged: number }>("/api/cache/purge", { [mode]: value });
      notify(`Purged ${r.purged} entr${r.purged === 1 ? "y" : "ies"} for ${mode} ${value}`, "success");
    } catch (err) {
      report("Purge failed", err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h2>Cache</h2>
      <form className="purge" onSubmit={(e) => void submit(e)} aria-label="Purge">
        <fieldset>
          <legend>Purge</legend>
          <label>
            <input type="radio" name="mode" checked={mode === "url"} onChange={() => setMode("url")} /> One URL
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === "prefix"} onChange={() => setMode("prefix")} /> Every URL
            under a prefix
          </label>
        </fieldset>
        <input
          aria-label={mode === "url" ? "URL" : "Prefix"}
          placeholder={mode === "url" ? "/api/users?page=2" : "/api/users"}
          value={value}
          onChange={(e) => setValue(e.target.value)}
          pattern="/.*"
          required
        />
        <button type="submit" disabled={busy}>
          Purge
        </button>
      </form>
      <p className="note" data-testid="cache-store">
        {store === "redis"
          ? "Redis store: purges reach every instance sharing it."
          : store === "memory"
            ? "Memory store: a purge takes this instance's entries; other instances keep theirs."
            : store === "none"
              ? "No cache section: the gateway caches nothing, so there is nothing to purge."
              : "…"}
      </p>
    </section>
  );
}
