import { describe, expect, it } from "vitest";
import css from "../src/styles.css?raw";

// WCAG 2.2 AA: 4.5:1 for text, 3:1 for large text and for the edges of controls and focus rings.
const TEXT = 4.5;
const UI = 3;

/** Each text (or control edge) colour on each background it is drawn on in styles.css. */
const PAIRS: [foreground: string, background: string, minimum: number][] = [
  ...["--bg", "--surface", "--mine", "--theirs", "--highlight", "--danger-bg", "--code-bg"].flatMap(
    (bg): [string, string, number][] => [["--ink", bg, TEXT], ["--muted", bg, TEXT]],
  ),
  ...["--bg", "--surface", "--mine", "--theirs", "--highlight", "--code-bg"].map(
    (bg): [string, string, number] => ["--accent", bg, TEXT], // links, sender names, the back arrow
  ),
  ["--on-accent", "--accent", TEXT], // primary and submit buttons, the unread badge
  ["--on-danger", "--danger", TEXT], // the requests count
  ...["--bg", "--surface", "--highlight", "--danger-bg", "--mine"].map(
    (bg): [string, string, number] => ["--danger", bg, TEXT], // errors, "offline", Block
  ),
  ["--success", "--surface", TEXT], // "online", "Saved."
  ["--success", "--bg", TEXT],
  ["--field", "--surface", UI], // the edge of an input or a secondary button
  ["--field", "--bg", UI],
  ["--danger-line", "--surface", UI], // the edge of a danger button
  ["--focus", "--surface", UI],
  ["--focus", "--bg", UI],
  ["--focus", "--mine", UI],
];

describe.each(["light", "dark"] as const)("the %s scheme", (scheme) => {
  const colours = schemeColours(scheme);

  it.each(PAIRS)("%s on %s is readable", (foreground, background, minimum) => {
    const ratio = contrast(colours[foreground], colours[background]);
    expect(ratio, `${foreground} on ${background}: ${ratio.toFixed(2)}:1`).toBeGreaterThanOrEqual(minimum);
  });

  it("defines every colour the pairs name", () => {
    const named = new Set(PAIRS.flatMap(([fg, bg]) => [fg, bg]));
    for (const name of named) expect(colours[name], name).toMatch(/^#[0-9a-f]{6}$/i);
  });
});

describe("styles.css", () => {
  it("has no colour outside the variables", () => {
    const rules = css.replace(/\/\*[\s\S]*?\*\//g, "").replace(/--[\w-]+\s*:[^;]+;/g, "");
    expect(rules.match(/#[0-9a-f]{3,8}\b|\brgba?\(|\b(white|black)\b(?![\w-])/gi) ?? []).toEqual([]);
  });

  it("sets a dark value for every light colour", () => {
    const light = Object.keys(schemeColours("light")).filter((name) => name !== "--tap");
    const dark = variablesIn(darkBlock());
    expect(light.filter((name) => !(name in dark))).toEqual([]);
  });
});

function schemeColours(scheme: "light" | "dark"): Record<string, string> {
  const light = variablesIn(firstBlock(css, ":root {"));
  return scheme === "light" ? light : { ...light, ...variablesIn(darkBlock()) };
}

function darkBlock(): string {
  const media = css.indexOf("@media (prefers-color-scheme: dark)");
  expect(media).toBeGreaterThanOrEqual(0);
  return firstBlock(css.slice(media), ":root {");
}

/** The body of the first `{ ... }` block opened by `opener` (no nesting inside it). */
function firstBlock(text: string, opener: string): string {
  const start = text.indexOf(opener);
  expect(start).toBeGreaterThanOrEqual(0);
  return text.slice(start + opener.length, text.indexOf("}", start));
}

function variablesIn(block: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [, name, value] of block.matchAll(/(--[\w-]+)\s*:\s*([^;]+);/g)) found[name] = value.trim();
  return found;
}

function contrast(a: string, b: string): number {
  const [lighter, darker] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (lighter + 0.05) / (darker + 0.05);
}

/** WCAG relative luminance of a #rrggbb colour. */
function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
