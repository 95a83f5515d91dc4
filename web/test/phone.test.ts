import { describe, expect, it } from "vitest";
import { countryChoices, defaultRegion, formatPhone, listToE164, toE164 } from "../src/phone";

describe("a number typed in its national format", () => {
  it.each([
    ["415 555 0102", "US", "+14155550102"],
    ["(415) 555-0102", "US", "+14155550102"],
    ["415.555.0102", "US", "+14155550102"],
    ["1 415 555 0102", "US", "+14155550102"],
    ["020 7946 0018", "GB", "+442079460018"],
    ["07400 123456", "GB", "+447400123456"],
    ["06 12 34 56 78", "FR", "+33612345678"],
  ])("%s in %s is %s", (typed, region, e164) => {
    expect(toE164(typed, region as never)).toEqual({ phone: e164 });
  });

  it("is read as a number of the chosen country, not of another", () => {
    expect(toE164("020 7946 0018", "GB")).toEqual({ phone: "+442079460018" });
    expect(toE164("020 7946 0018", "US")).toHaveProperty("problem");
  });
});

describe("a number typed in full with + or 00", () => {
  it.each(["US", "GB", "JP"] as const)("stands for itself whatever the country (%s)", (region) => {
    expect(toE164("+44 20 7946 0018", region)).toEqual({ phone: "+442079460018" });
    expect(toE164("0044 20 7946 0018", region)).toEqual({ phone: "+442079460018" });
    expect(toE164("+1 (415) 555-0102", region)).toEqual({ phone: "+14155550102" });
  });
});

describe("a number that is not possible", () => {
  it("is refused in words that name the country it was read for", () => {
    expect(toE164("415 555", "US")).toEqual({
      problem: "That doesn't look like a full phone number for United States.",
    });
    expect(toE164("4155550102999", "US")).toEqual({
      problem: "That doesn't look like a full phone number for United States.",
    });
    expect(toE164("020 79", "GB")).toEqual({
      problem: "That doesn't look like a full phone number for United Kingdom.",
    });
  });

  it("typed with + but too short to name a country is refused with a hint", () => {
    expect(toE164("+44 12", "US")).toEqual({
      problem: "That doesn't look like a full phone number. Numbers abroad start with + and the country code.",
    });
  });

  it("empty or with letters is refused before any parsing", () => {
    expect(toE164("   ", "US")).toEqual({ problem: "Enter a phone number." });
    expect(toE164("call me", "US")).toHaveProperty("problem");
  });
});

describe("the default country from the browser's languages", () => {
  it.each([
    [["en-US", "en"], "US"],
    [["en-GB", "en"], "GB"],
    [["de-AT", "de"], "AT"],
    [["en", "en-GB"], "GB"], // the first language that names a region wins
    [["fr"], "FR"], // no region named: the language's likely one
    [["ja"], "JP"],
    [[], "US"],
    [["not a tag!"], "US"],
    [["en-001"], "US"], // "world" is no country: the likely region of the first language
  ])("%j → %s", (languages, region) => {
    expect(defaultRegion(languages)).toBe(region);
  });
});

describe("a list of numbers for a new chat", () => {
  it("turns each, in any format, into E.164", () => {
    expect(listToE164("415 555 0102, +44 20 7946 0018; (415) 555-0103", "US")).toEqual({
      phones: ["+14155550102", "+442079460018", "+14155550103"],
    });
  });

  it("names the entry that is not a number", () => {
    expect(listToE164("415 555 0102, 555", "US")).toEqual({
      problem: "555: That doesn't look like a full phone number for United States.",
    });
    expect(listToE164(" , ", "US")).toEqual({ problem: "Enter a phone number." });
  });
});

describe("showing numbers", () => {
  it("formats E.164 the international way and leaves anything else as it is", () => {
    expect(formatPhone("+14155550102")).toBe("+1 415 555 0102");
    expect(formatPhone("+442079460018")).toBe("+44 20 7946 0018");
    expect(formatPhone("not a number")).toBe("not a number");
  });

  it("offers every country by name with its calling code", () => {
    const choices = countryChoices();
    expect(choices).toContainEqual({ region: "US", label: "United States (+1)" });
    expect(choices).toContainEqual({ region: "GB", label: "United Kingdom (+44)" });
    const labels = choices.map((choice) => choice.label);
    expect(labels).toEqual([...labels].sort((a, b) => a.localeCompare(b)));
  });
});
