import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
  // css.include: the contrast test reads styles.css (`?raw`); Vitest empties CSS imports otherwise
  test: { include: ["test/**/*.test.ts"], environment: "node", css: { include: [/styles\.css/] } },
});
