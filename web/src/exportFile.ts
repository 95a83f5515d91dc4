// "Download my data": what `GET /me/export` answers, saved as a JSON file by the browser
// itself (a Blob and `<a download>`): nothing leaves the device but that one request.

/** `ephemera-export-YYYY-MM-DD.json`, by the local calendar date. */
export function exportFileName(at: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `ephemera-export-${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}.json`;
}

/** What saving needs from the page (the browser's own unless a test says otherwise). */
export interface SaveTarget {
  document: Pick<Document, "createElement" | "body">;
  urls: Pick<typeof URL, "createObjectURL" | "revokeObjectURL">;
}

/** The object URL outlives the click by this long: some browsers read it after the event. */
const REVOKE_AFTER_MS = 10_000;

/** Hands `data`, as indented JSON, to the browser as a download named `name`. */
export function saveJson(data: unknown, name: string, target: SaveTarget = { document, urls: URL }): void {
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const url = target.urls.createObjectURL(blob);
  const link = target.document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  target.document.body.append(link);
  try {
    link.click();
  } finally {
    link.remove();
    setTimeout(() => target.urls.revokeObjectURL(url), REVOKE_AFTER_MS);
  }
}
