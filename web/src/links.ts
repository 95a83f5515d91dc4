// Links in message bodies: a body becomes text and link segments, and only an http(s) URL
// written out in full ever becomes a link. No other scheme (javascript:, data:, file:...) is
// looked for at all, so no spelling of one can turn into an anchor. The view builds the
// anchors as elements from these segments, never as HTML.

export type Segment = { kind: "text"; text: string } | { kind: "link"; text: string; href: string };

/** Something that starts like a web address, at a word's start, up to a space or a character
 * that never ends one unescaped. */
const CANDIDATE = /\bhttps?:\/\/[^\s<>"]+/gi;
/** Punctuation that ends a sentence rather than the address ("see https://x.org."). */
const TRAILING = new Set([".", ",", ";", ":", "!", "?", "'", "*"]);
const CLOSER_OF: Record<string, string> = { ")": "(", "]": "[", "}": "{" };

export function linkSegments(body: string): Segment[] {
  const segments: Segment[] = [];
  let textFrom = 0;
  for (const match of body.matchAll(CANDIDATE)) {
    const text = withoutTrailing(match[0]);
    const href = webAddress(text);
    if (href === null) continue;
    const start = match.index;
    if (start > textFrom) segments.push({ kind: "text", text: body.slice(textFrom, start) });
    segments.push({ kind: "link", text, href });
    textFrom = start + text.length;
  }
  if (textFrom < body.length) segments.push({ kind: "text", text: body.slice(textFrom) });
  return segments;
}

/** The address as the browser will read it, or null unless it is http(s) with a host. */
export function webAddress(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) return null;
  return url.href;
}

/** Drops sentence punctuation, and closing brackets the address did not open
 * ("(see https://x.org/a)" ends before the ")"; "https://x.org/wiki/A_(b)" keeps it). */
function withoutTrailing(candidate: string): string {
  let text = candidate;
  for (;;) {
    const last = text.at(-1) ?? "";
    const opener = CLOSER_OF[last];
    if (TRAILING.has(last) || (opener !== undefined && count(text, opener) < count(text, last))) {
      text = text.slice(0, -1);
      continue;
    }
    return text;
  }
}

function count(text: string, char: string): number {
  return text.split(char).length - 1;
}
