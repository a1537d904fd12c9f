import { useEffect, useMemo, useState } from "react";
import { BrowserRouter, NavLink, Navigate, Route, Routes } from "react-router-dom";
import { SnackbarProvider } from "./components/Snackbar";
import { ThemeControls } from "./components/ThemeControls";
import { ServicesContext, useServices } from "./context";
import { Api } from "./lib/api";
import { Session } from "./lib/session";
import { Backends } from "./pages/Backends";
import { CachePage } from "./pages/Cache";
import { ConfigPage } from "./pages/Config";
import { Login } from "./pages/Login";
import { MetricsPage } from "./pages/Metrics";
import { Overview } from "./pages/Overview";
import { PromQL } from "./pages/PromQL";
import { RoutesPage } from "./pages/Routes";

const PAGES = [
  { to: "/", label: "Overview" },
  { to: "/backends", label: "Backends" },
  { to: "/metrics", label: "Metrics" },
  { to: "/promql", label: "PromQL" },
  { to: "/routes", label: "Routes" },
  { to: "/config", label: "Config" },
  { to: "/cache", label: "Cache" },
];

export function App() {
  const services = useMemo(() => {
    const session = new Session();
    return { session, api: new Api(session) };
  }, []);
  const [signedIn, setSignedIn] = useState(false);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    const off = services.session.subscribe(setSignedIn);
    void services.session.resume().finally(() => setReady(true));
    return () => {
      off();
    };
  }, [services]);
  return (
    <ServicesContext.Provider value={services}>
      <SnackbarProvider>
        <BrowserRouter>
          {!ready ? null : signedIn ? <Shell /> : <Login />}
        </BrowserRouter>
      </SnackbarProvider>
    </ServicesContext.Provider>
  );
}

function Shell() {
  const { session } = useServices();
  const [open, setOpen] = useState(false);
  return (
    <div className="shell">
      <header className="topbar">
        <button type="button" className="menu" aria-label="Menu" onClick={() => setOpen((o) => !o)}>
          ☰
        </button>
        <span className="brand">api-gateway</span>
        <ThemeControls />
        <button type="button" onClick={() => void session.logout()}>
          Sign out
        </button>
      </header>
      <nav className={open ? "nav open" : "nav"} aria-label="Pages">
        {PAGES.map((p) => (
          <NavLink key={p.to} to={p.to} end onClick={() => setOpen(false)}>
            {p.label}
          </NavLink>
        ))}
      </nav>
      <main>
        <Routes>
          <Route path="/" element={<Overview />} />
          <Route path="/backends" element={<Backends />} />
          <Route path="/metrics" element={<MetricsPage />} />
          <Route path="/promql" element={<PromQL />} />
          <Route path="/routes" element={<RoutesPage />} />
          <Route path="/config" element={<ConfigPage />} />
          <Route path="/cache" element={<CachePage />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </main>
    </div>
  );
}
