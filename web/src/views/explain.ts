import { ApiError } from "../api";

/** What to tell a person about a failed call, in words. */
export function explain(error: unknown): string {
  if (!(error instanceof ApiError)) return "Cannot reach the server. Check your connection and try again.";
  if (error.code === "rate_limited") {
    return `Too many attempts. Try again in ${error.retryAfterS ?? "a few"} seconds.`;
  }
  const attemptsLeft = error.details.attempts_left;
  if (typeof attemptsLeft === "number") {
    return `That code is not right. ${attemptsLeft} ${attemptsLeft === 1 ? "attempt" : "attempts"} left.`;
  }
  return error.message;
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
