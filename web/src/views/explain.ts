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
