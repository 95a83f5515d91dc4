import type { ChatClient } from "../client";
import { type PendingProgress, pendingProgress } from "../sending";
import type { LinkStatus, PendingSend } from "../store";
import { explainRefusal } from "./explain";
import "./status.css";

interface Props {
  client: ChatClient;
  pending: PendingSend;
  outbox: PendingSend[];
  link: LinkStatus;
  /** Local time, ticking: the countdown of a rate-limited message. */
  now: number;
}

/** One of my messages not yet stored, saying where it stands: on its way, waiting for the link,
 * waiting out a rate limit (counting down), or not sent, with Retry and Discard. */
export function PendingMessage({ client, pending, outbox, link, now }: Props) {
  const progress = pendingProgress(outbox, pending, link, now);
  const held = progress.kind === "waiting_for_link" || progress.kind === "retry_in";
  const className = `message mine pending${progress.kind === "failed" ? " failed" : held ? " held" : ""}`;
  return (
    <li className={className} data-testid="pending-message">
      <p className="body" data-testid="body">{pending.body}</p>
      <p className="meta">
        {progress.kind === "failed" ? (
          <span className="pending-state">
            <span role="alert">{explainRefusal(progress.code)}</span>
            {progress.code !== "too_large" && (
              <button type="button" className="link" onClick={() => client.retryFailed(pending.client_msg_id)}>Retry</button>
            )}
            <button type="button" className="link" onClick={() => client.discardFailed(pending.client_msg_id)}>Discard</button>
          </span>
        ) : (
          <span className="pending-state" data-testid="pending-state">
            <span>{progressText(progress)}</span>
          </span>
        )}
      </p>
    </li>
  );
}

function progressText(progress: Exclude<PendingProgress, { kind: "failed" }>): string {
  switch (progress.kind) {
    case "waiting_for_link":
      return "Waiting for connection";
    case "retry_in":
      return progress.code === "rate_limited"
        ? `Sending in ${progress.seconds} s: slow down`
        : `Sending again in ${progress.seconds} s`;
    case "sending":
      return "Sending…";
  }
}
