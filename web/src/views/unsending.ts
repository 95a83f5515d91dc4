import { UNSEND_CUT_OFF } from "../store";

/** Why one of my messages was not unsent, from the code of the server's `error` frame (or the
 * link dropping before it answered). */
export function explainUnsendRefusal(code: string): string {
  switch (code) {
    case "gone":
      return "This message has already expired, or was unsent already.";
    case "not_found":
      return "This message isn't there any more: it expired, or the chat is gone.";
    case "forbidden":
      return "Only the person who sent a message can unsend it.";
    case "rate_limited":
      return "Too many requests. Try unsending again in a moment.";
    case UNSEND_CUT_OFF:
      return "The connection dropped before the server answered. If the message is still here, try again.";
    default:
      return `Couldn't unsend this message (${code}).`;
  }
}
