import { useState, type FormEvent } from "react";
import { useNotify, useReportError } from "../components/Snackbar";
import { useServices } from "../context";

export function CachePage() {
  const { api } = useServices();
  const notify = useNotify();
  const report = useReportError();
  const [mode, setMode] = useState<"url" | "prefix">("url");
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
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
      <p className="note">Purges reach every instance sharing the cache (Redis store).</p>
    </section>
  );
}
