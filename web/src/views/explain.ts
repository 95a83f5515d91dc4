import { ApiError } from "../api";

/** What the person was doing when a call failed: the same code means different things in each. */
export type Situation = "request-code" | "verify-code" | "start-chat" | "other";

/** What to tell a person about a failed call, in words. The server's own message is for
 * developers: it is shown only for a code this client does not know. */
export function explain(error: unknown, situation: Situation = "other"): string {
  if (!(error instanceof ApiError)) return "Can't reach the server. Check your connection and try again.";
  switch (error.code) {
    case "bad_request":
      return badRequest(error, situation);
    case "unauthorized":
      return unauthorized(error, situation);
    case "forbidden":
      return situation === "start-chat"
        ? "You can't start a chat with one of these people."
        : "You aren't allowed to do that here.";
    case "not_found":
      return "That isn't there any more. It may have been removed, or you may have left.";
    case "conflict":
      return "That clashed with a change made elsewhere. Try again.";
    case "gone":
      return "That's gone for good: it expired or was unsent.";
    case "too_large":
      return "That's too long to send. Shorten it and try again.";
    case "rate_limited":
      return rateLimited(error, situation);
    case "internal":
      return "Something went wrong on our side. Try again in a moment.";
    default:
      return error.message || `Something went wrong (${error.code}).`;
  }
}

/** How long until something may be tried again, as people say it: "27 s", "8 min", "2 h". */
export function formatWait(seconds: number): string {
  const whole = Math.max(1, Math.ceil(seconds));
  if (whole < 90) return `${whole} s`;
  if (whole < 90 * 60) return `${Math.ceil(whole / 60)} min`;
  return `${Math.ceil(whole / 3600)} h`;
}

/** Seconds until a rate-limited call may be made again (the `Retry-After` header, else the
 * body's `retry_after_ms`), or undefined when the server did not say. */
export function retryAfterSeconds(error: ApiError): number | undefined {
  if (error.retryAfterS !== undefined) return error.retryAfterS;
  const ms = error.details.retry_after_ms;
  return typeof ms === "number" && ms > 0 ? Math.ceil(ms / 1000) : undefined;
}

function badRequest(error: ApiError, situation: Situation): string {
  switch (situation) {
    case "request-code":
      // The server's phone check refuses either a country (OTP_ALLOWED_COUNTRIES) or the number.
      return error.details.reason === "country_not_allowed"
        ? "We can't send codes to numbers in that country yet."
        : "We can't text that number. Check that it's a mobile number, in the right country.";
    case "verify-code":
      return "Enter the 6-digit code from the text we sent.";
    case "start-chat":
      return "Check the numbers: each must be someone else's mobile number.";
    default:
      return "That wasn't accepted. Check what you entered and try again.";
  }
}

function unauthorized(error: ApiError, situation: Situation): string {
  if (situation !== "verify-code") return "You've been signed out. Sign in again to carry on.";
  const attemptsLeft = error.details.attempts_left;
  if (typeof attemptsLeft !== "number") return "That code has expired or was already used. Ask for a new code.";
  if (attemptsLeft <= 0) return "That code is not right, and it was the last try. Ask for a new code.";
  return `That code is not right. ${attemptsLeft} ${attemptsLeft === 1 ? "attempt" : "attempts"} left.`;
}

function rateLimited(error: ApiError, situation: Situation): string {
  const seconds = retryAfterSeconds(error);
  const when = seconds === undefined ? "in a little while" : `in ${formatWait(seconds)}`;
  switch (situation) {
    case "request-code":
      return `Too many codes asked for. You can ask for another ${when}.`;
    case "verify-code":
      return `Too many tries. Try the code again ${when}.`;
    default:
      return `Slow down: too many requests. Try again ${when}.`;
  }
}

/** Why a message of mine did not go, from the code of the server's `error` frame. */
export function explainRefusal(code: string): string {
  switch (code) {
    case "forbidden":
      return "Not delivered: this person isn't accepting your messages.";
    case "not_found":
      return "Not sent: this chat is no longer there.";
    case "too_large":
      return "Not sent: the message is too long.";
    default:
      return `Not sent (${code}).`;
  }
}

/** A display name the server will take: 1–64 characters once trimmed; null when it will. */
export function displayNameProblem(name: string): string | null {
  const length = [...name.trim()].length;
  if (length === 0) return "Enter a name, or keep the one you have.";
  if (length > 64) return "A display name can be at most 64 characters.";
  return null;
}
