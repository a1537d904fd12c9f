import { useState } from "react";
import { applyTheme, loadTheme, saveTheme, type Theme } from "../lib/theme";

export function ThemeControls() {
  const [theme, setTheme] = useState<Theme>(loadTheme);
  const update = (next: Theme) => {
    setTheme(next);
    saveTheme(next);
    applyTheme(next);
  };
  return (
    <span className="theme-controls">
      <button
        type="button"
        aria-label={theme.mode === "dark" ? "Switch to light theme" : "Switch to dark theme"}
        onClick={() => update({ ...theme, mode: theme.mode === "dark" ? "light" : "dark" })}
      >
        {theme.mode === "dark" ? "☀" : "☾"}
      </button>
      <input
        type="color"
        aria-label="Brand colour"
        value={theme.brand}
        onChange={(e) => update({ ...theme, brand: e.target.value })}
      />
    </span>
  );
}
