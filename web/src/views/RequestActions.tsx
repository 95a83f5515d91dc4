import type { ChatClient } from "../client";
import type { ConversationState } from "../store";
import { useAction } from "./useAction";

interface Props {
  client: ChatClient;
  conversation: ConversationState;
  /** Who the request is from, as the list shows it. */
  name: string;
  /** In the list: the buttons say whose request they answer (several are on screen at once). */
  compact?: boolean;
  /** The request left the list (declined, or declined and blocked): what to tell the person. */
  onLeft: (notice: string) => void;
}

/** Accept, Decline, Block (decline and block whoever started it). */
export function RequestActions({ client, conversation, name, compact = false, onLeft }: Props) {
  const { run, busy, error } = useAction();
  const whose = (verb: string) => (compact ? `${verb} request from ${name}` : undefined);

  async function decline(block: boolean) {
    if (await run(() => client.declineRequest(conversation.id, block))) {
      onLeft(block
        ? `Declined and blocked ${name}. You can unblock them in Settings.`
        : `Declined the request from ${name}.`);
    }
  }

  return (
    <div className={compact ? "request-actions compact" : "request-actions"} role="group"
      aria-label={compact ? `Answer ${name}` : "Answer this request"}>
      <button type="button" className="primary" disabled={busy} aria-label={whose("Accept")}
        onClick={() => void run(() => client.acceptRequest(conversation.id))}>Accept</button>
      <button type="button" className="secondary" disabled={busy} aria-label={whose("Decline")}
        onClick={() => void decline(false)}>Decline</button>
      <button type="button" className="danger" disabled={busy} title={`Decline and block ${name}`}
        aria-label={compact ? `Block ${name}` : undefined} onClick={() => void decline(true)}>Block</button>
      {error && <p role="alert" className="error">{error}</p>}
    </div>
  );
}
