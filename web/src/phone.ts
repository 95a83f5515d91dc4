// Phone numbers as people type them ("415 555 0102", "(415) 555-0102", "020 7946 0018", "+44 …"),
// turned into the E.164 form the server takes. libphonenumber-js's min metadata tells a possible
// number from an impossible one; the server still decides which numbers can get an SMS.

import {
  type CountryCode,
  getCountries,
  getCountryCallingCode,
  isSupportedCountry,
  parsePhoneNumberFromString,
} from "libphonenumber-js/min";

export type Region = CountryCode;

/** Where numbers without a "+" are read when the browser's languages name no region. */
export const FALLBACK_REGION: Region = "US";

/** A number the server will read, or why it will not do, in words. */
export type PhoneResult = { phone: string } | { problem: string };

/** The region the browser's languages point at: the first that names one ("en-GB" → GB), else
 * the likely region of the first language ("fr" → FR), else the US. */
export function defaultRegion(languages: readonly string[] = browserLanguages()): Region {
  for (const tag of languages) {
    const region = locale(tag)?.region;
    if (region && isSupportedCountry(region)) return region;
  }
  const likely = languages.length > 0 ? locale(languages[0])?.maximize().region : undefined;
  return likely && isSupportedCountry(likely) ? likely : FALLBACK_REGION;
}

/** `raw` in E.164 ("+14155550102"): national formats are read as numbers of `region`, a number
 * that starts with "+" (or "00") stands for itself whatever the region. */
export function toE164(raw: string, region: Region): PhoneResult {
  const text = raw.trim().replace(/^00/, "+"); // the international prefix most of the world dials
  if (!text) return { problem: "Enter a phone number." };
  if (/[a-z]/i.test(text)) return { problem: "A phone number has only digits (and maybe a +)." };
  const number = parsePhoneNumberFromString(text, region);
  const country = text.startsWith("+") ? number?.country : region;
  if (!number || !number.isPossible()) {
    return {
      problem: country
        ? `That doesn't look like a full phone number for ${countryName(country)}.`
        : "That doesn't look like a full phone number. Numbers abroad start with + and the country code.",
    };
  }
  return { phone: number.number };
}

/** Every member of a comma, semicolon or line separated list, in E.164; the first problem names
 * the number it is about. */
export function listToE164(raw: string, region: Region): { phones: string[] } | { problem: string } {
  const phones: string[] = [];
  for (const entry of raw.split(/[,;\n]/).map((part) => part.trim()).filter(Boolean)) {
    const result = toE164(entry, region);
    if ("problem" in result) return { problem: `${entry}: ${result.problem}` };
    phones.push(result.phone);
  }
  return phones.length > 0 ? { phones } : { problem: "Enter a phone number." };
}

/** An E.164 number the way people read it ("+1 415 555 0102"); anything else unchanged. */
export function formatPhone(e164: string): string {
  return parsePhoneNumberFromString(e164)?.formatInternational() ?? e164;
}

let regionNames: Intl.DisplayNames | undefined;

/** "United States" for US, in English like the rest of the client. */
export function countryName(region: string): string {
  try {
    regionNames ??= new Intl.DisplayNames(["en"], { type: "region" });
    return regionNames.of(region) ?? region;
  } catch {
    return region; // not a region code, or no Intl data for it
  }
}

/** The country select's choices, by name: `{ region: "GB", label: "United Kingdom (+44)" }`. */
export function countryChoices(): { region: Region; label: string }[] {
  return getCountries()
    .map((region) => ({ region, name: countryName(region), code: getCountryCallingCode(region) }))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(({ region, name, code }) => ({ region, label: `${name} (+${code})` }));
}

function browserLanguages(): readonly string[] {
  if (typeof navigator === "undefined") return [];
  return navigator.languages?.length ? navigator.languages : navigator.language ? [navigator.language] : [];
}

function locale(tag: string): Intl.Locale | undefined {
  try {
    return new Intl.Locale(tag);
  } catch {
    return undefined; // not a language tag: ignore it
  }
}
