// Dark or light, and a brand colour, remembered in localStorage and applied as CSS variables.

export type Mode = "light" | "dark";

export interface Theme {
  mode: Mode;
  brand: string;
}

const KEY = "gw.theme";
export const DEFAULT_THEME: Theme = { mode: "dark", brand: "#f6821f" };

export function loadTheme(storage: Pick<Storage, "getItem"> = localStorage): Theme {
  try {
    const saved = JSON.parse(storage.getItem(KEY) ?? "null") as Partial<Theme> | null;
    const mode = saved?.mode === "light" || saved?.mode === "dark" ? saved.mode : DEFAULT_THEME.mode;
    const brand = /^#[0-9a-f]{6}$/i.test(saved?.brand ?? "") ? (saved?.brand as string) : DEFAULT_THEME.brand;
    return { mode, brand };
  } catch {
    return DEFAULT_THEME;
  }
}

export function saveTheme(theme: Theme, storage: Pick<Storage, "setItem"> = localStorage): void {
  storage.setItem(KEY, JSON.stringify(theme));
}

/** Sets the theme on the document root (CSSOM, which the CSP allows). */
export function applyTheme(theme: Theme, root: HTMLElement = document.documentElement): void {
  root.dataset.theme = theme.mode;
  root.style.setProperty("--brand", theme.brand);
}
