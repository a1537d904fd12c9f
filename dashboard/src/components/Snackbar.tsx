// A queue of short messages: one shows at a time, each for a few seconds or until dismissed.

import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { ApiError } from "../lib/api";

export type Kind = "info" | "success" | "error";

interface Message {
  id: number;
  kind: Kind;
  text: string;
}

type Notify = (text: string, kind?: Kind) => void;

const Ctx = createContext<Notify>(() => undefined);

export function useNotify(): Notify {
  return useContext(Ctx);
}

/**
 * Reports a failed call as "<what>: <message>". A 401 says nothing here: the session ended and
 * the sign-in page says so. Network failures (the gateway unreachable) are reported too.
 */
export function useReportError(): (what: string, e: unknown) => void {
  const notify = useNotify();
  return useCallback(
    (what, e) => {
      if (e instanceof ApiError && e.status === 401) return;
      const message = e instanceof Error ? e.message : String(e);
      notify(what ? `${what}: ${message}` : message, "error");
    },
    [notify],
  );
}

let next = 1;

export function SnackbarProvider({ children }: { children: ReactNode }) {
  const [queue, setQueue] = useState<Message[]>([]);
  const notify = useCallback<Notify>((text, kind = "info") => {
    // A poll that keeps failing queues its message once, not every two seconds.
    setQueue((q) => (q.some((m) => m.text === text && m.kind === kind) ? q : [...q, { id: next++, kind, text }]));
  }, []);
  const current = queue[0];
  useEffect(() => {
    if (!current) return;
    const t = setTimeout(() => setQueue((q) => q.slice(1)), current.kind === "error" ? 6000 : 3500);
    return () => clearTimeout(t);
  }, [current]);
  return (
    <Ctx.Provider value={notify}>
      {children}
      {current && (
        <div className={`snackbar ${current.kind}`} role={current.kind === "error" ? "alert" : "status"}>
          <span>{current.text}</span>
          {queue.length > 1 && <span className="more">+{queue.length - 1}</span>}
          <button type="button" onClick={() => setQueue((q) => q.slice(1))} aria-label="Dismiss">
            ×
          </button>
        </div>
      )}
    </Ctx.Provider>
  );
}
