import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { explain, formatWait } from "../src/views/explain";

/** An error as the Api builds it from a reply: the body's `error` object, the header's wait. */
function refused(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
  return new ApiError(status, code, message, { code, message, ...details });
}

describe("asking for a code", () => {
  it("a number the server cannot text says so, not the server's words", () => {
    const text = explain(refused(400, "bad_request", "phone is not a valid mobile number"), "request-code");
    expect(text).toBe("We can't text that number. Check that it's a mobile number, in the right country.");
  });

  it("a country outside OTP_ALLOWED_COUNTRIES is named as the reason", () => {
    const error = refused(400, "bad_request", "we cannot send codes to numbers in that country",
      { reason: "country_not_allowed" });
    expect(explain(error, "request-code")).toBe("We can't send codes to numbers in that country yet.");
  });

  it("too many codes says when another may be asked for, from Retry-After", () => {
    const error = refused(429, "rate_limited", "too many requests", { retry_after_ms: 480_000, retry_after_s: 480 });
    expect(explain(error, "request-code")).toBe("Too many codes asked for. You can ask for another in 8 min.");
  });

  it("too many codes without a Retry-After header reads the body's retry_after_ms", () => {
    const error = refused(429, "rate_limited", "too many requests", { retry_after_ms: 27_000 });
    expect(explain(error, "request-code")).toBe("Too many codes asked for. You can ask for another in 27 s.");
  });
});

describe("entering the code", () => {
  it("a wrong code says how many attempts are left", () => {
    expect(explain(refused(401, "unauthorized", "wrong code", { attempts_left: 4 }), "verify-code"))
      .toBe("That code is not right. 4 attempts left.");
    expect(explain(refused(401, "unauthorized", "wrong code", { attempts_left: 1 }), "verify-code"))
      .toBe("That code is not right. 1 attempt left.");
  });

  it("the last wrong try asks for a new code", () => {
    expect(explain(refused(401, "unauthorized", "wrong code", { attempts_left: 0 }), "verify-code"))
      .toBe("That code is not right, and it was the last try. Ask for a new code.");
  });

  it("an expired, used or locked challenge asks for a new code", () => {
    const error = refused(401, "unauthorized", "this code has expired or was used; ask for a new one");
    expect(explain(error, "verify-code")).toBe("That code has expired or was already used. Ask for a new code.");
  });

  it("a code that is not six digits says what a code looks like", () => {
    const error = refused(400, "bad_request", "code must be the 6 digits we sent");
    expect(explain(error, "verify-code")).toBe("Enter the 6-digit code from the text we sent.");
  });

  it("too many guesses says when to try again", () => {
    const error = refused(429, "rate_limited", "slow down", { retry_after_s: 45 });
    expect(explain(error, "verify-code")).toBe("Too many tries. Try the code again in 45 s.");
  });
});

describe("every error code, anywhere else", () => {
  it.each([
    ["bad_request", 400, "That wasn't accepted. Check what you entered and try again."],
    ["unauthorized", 401, "You've been signed out. Sign in again to carry on."],
    ["forbidden", 403, "You aren't allowed to do that here."],
    ["not_found", 404, "That isn't there any more. It may have been removed, or you may have left."],
    ["conflict", 409, "That clashed with a change made elsewhere. Try again."],
    ["gone", 410, "That's gone for good: it expired or was unsent."],
    ["too_large", 413, "That's too long to send. Shorten it and try again."],
    ["rate_limited", 429, "Slow down: too many requests. Try again in a little while."],
    ["internal", 500, "Something went wrong on our side. Try again in a moment."],
  ])("%s is worded for people, never the server's text", (code, status, sentence) => {
    const text = explain(refused(status, code, "a developer's message"));
    expect(text).toBe(sentence);
    expect(text).not.toContain("developer");
  });

  it("starting a chat words a refused number and a blocked person for that screen", () => {
    expect(explain(refused(400, "bad_request", "phone is not a valid mobile number"), "start-chat"))
      .toBe("Check the numbers: each must be someone else's mobile number.");
    expect(explain(refused(403, "forbidden", "you cannot start a conversation"), "start-chat"))
      .toBe("You can't start a chat with one of these people.");
  });

  it("a code this client does not know shows the server's message as the last resort", () => {
    expect(explain(refused(418, "teapot", "short and stout"))).toBe("short and stout");
  });

  it("no answer at all (a failed fetch) says the server cannot be reached", () => {
    expect(explain(new TypeError("Failed to fetch"))).toBe("Can't reach the server. Check your connection and try again.");
  });
});

describe("waits, as people say them", () => {
  it.each([
    [0.2, "1 s"],
    [27, "27 s"],
    [89, "89 s"],
    [90, "2 min"],
    [480, "8 min"],
    [5399, "90 min"],
    [5400, "2 h"],
  ])("%d seconds is %s", (seconds, words) => {
    expect(formatWait(seconds)).toBe(words);
  });
});
