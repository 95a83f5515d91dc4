// Days and times as a person reads them, in the device's own time zone: a separator per
// calendar day ("Today", "Yesterday", "Mon 23 Nov") and the full date and time of a message.
// Days are compared by their local calendar fields, never by 24-hour steps, so a clock change
// (a 23- or 25-hour day) never puts a message on the wrong day.

/** Formatters are costly to build: one per locale and style, built on first use. */
const formats = new Map<string, Intl.DateTimeFormat>();

function format(locale: string | undefined, style: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${locale ?? ""} ${style}`;
  let built = formats.get(key);
  if (!built) {
    built = new Intl.DateTimeFormat(locale ?? [], options);
    formats.set(key, built);
  }
  return built;
}

/** The local calendar day of a time, as an ISO date ("2026-11-30"): a key and a `dateTime`. */
export function dayKey(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
}

/** The separator shown above a day's first message, as seen at `now`. */
export function dayLabel(ms: number, now: number, locale?: string): string {
  const day = dayKey(ms);
  if (day === dayKey(now)) return "Today";
  const yesterday = new Date(now);
  yesterday.setDate(yesterday.getDate() - 1); // the calendar's day before, whatever its length
  if (day === dayKey(yesterday.getTime())) return "Yesterday";
  const sameYear = new Date(ms).getFullYear() === new Date(now).getFullYear();
  const options: Intl.DateTimeFormatOptions = { weekday: "short", day: "numeric", month: "short" };
  return sameYear
    ? format(locale, "day", options).format(ms)
    : format(locale, "day-year", { ...options, year: "numeric" }).format(ms);
}

/** The full date and time, to the second: shown on hover and in a message's details. */
export function fullDateTime(ms: number, locale?: string): string {
  return format(locale, "full", { dateStyle: "full", timeStyle: "medium" }).format(ms);
}

/** The clock time shown under each message. */
export function clockTime(ms: number, locale?: string): string {
  return format(locale, "clock", { hour: "2-digit", minute: "2-digit" }).format(ms);
}

/** Where a day separator goes: before each item whose local day differs from the one before. */
export function startsNewDay(ms: number, previousMs: number | undefined): boolean {
  return previousMs === undefined || dayKey(ms) !== dayKey(previousMs);
}

/** A short span ("42s", "5m", "3h", "2d"): what is left of a message, how long ago someone was seen. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
