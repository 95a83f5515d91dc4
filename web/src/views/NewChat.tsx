import { type FormEvent, useState } from "react";
import type { ChatClient } from "../client";
import { defaultRegion, listToE164 } from "../phone";
import { explain } from "./explain";

interface Props {
  client: ChatClient;
  onCreated: (id: string) => void;
  onClose: () => void;
}

/** A number that cannot be one, caught before any request; its sentence names the entry. */
class NotAPhone extends Error {}

/** The one place a new chat is asked for: "415 555 0101, +44 20 7946 0018" (national numbers
 * read in the browser's country, as at sign-in), one number for a chat, several for a group. */
async function startChat(client: ChatClient, phones: string, title: string): Promise<string> {
  const parsed = listToE164(phones, defaultRegion());
  if ("problem" in parsed) throw new NotAPhone(parsed.problem);
  const conversation = await client.createConversation(parsed.phones, title.trim() || undefined);
  return conversation.id;
}

/** Start a chat with one number, or a group with several (the right pane; a phone's whole screen). */
export function NewChat({ client, onCreated, onClose }: Props) {
  const [phones, setPhones] = useState("");
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      onCreated(await startChat(client, phones, title));
    } catch (caught) {
      setError(caught instanceof NotAPhone ? caught.message : explain(caught, "start-chat"));
      setBusy(false);
    }
  }

  return (
    <div className="new-chat">
      <header className="chat-header">
        <h2>New chat</h2>
        <button type="button" className="link close-pane" onClick={onClose}>Cancel</button>
      </header>
      <form className="new-chat-form" onSubmit={submit} aria-label="New chat">
        <label>
          Phone numbers
          <input value={phones} onChange={(e) => setPhones(e.target.value)} placeholder="+1 415 555 0101, ..."
            autoComplete="off" required autoFocus />
        </label>
        <p className="hint">One number for a chat, several (separated by commas) for a group.</p>
        <label>
          Group title (optional)
          <input value={title} onChange={(e) => setTitle(e.target.value)} />
        </label>
        <button type="submit" disabled={busy}>Start chat</button>
        {error && <p role="alert" className="error">{error}</p>}
      </form>
    </div>
  );
}
