import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Relative asset URLs: the built files work under any prefix. The admin listener serves dist/.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets", sourcemap: false },
  test: { environment: "jsdom", include: ["src/**/*.test.{ts,tsx}"] },
});
