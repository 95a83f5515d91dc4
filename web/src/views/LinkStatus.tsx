import { waitingSummary } from "../sending";
import type { LinkStatus as Status, PendingSend } from "../store";
import "./status.css";

interface Props {
  link: Status;
  outbox: PendingSend[];
}

/** "offline · 3 messages waiting": the link as it is (online only while the server answers),
 * and what waits for it. The word alone is in `connection-status` for tests and styling. */
export function LinkStatus({ link, outbox }: Props) {
  const waiting = waitingSummary(outbox, link);
  return (
    <span className="link-status" aria-live="polite">
      <span className={`status status-${link}`} data-testid="connection-status">{link}</span>
      {waiting && <span className="waiting" data-testid="waiting">{waiting}</span>}
    </span>
  );
}
