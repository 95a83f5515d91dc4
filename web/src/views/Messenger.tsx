import { type FormEvent, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import type { Api } from "../api";
import { ChatClient } from "../client";
import { type StoredSession, loadOutbox } from "../session";
import { RealtimeSocket } from "../socket";
import { type ChatState, type ConversationState, conversationName, conversationsByActivity } from "../store";
import { ChatView } from "./ChatView";
import { explain } from "./explain";

interface Props {
  api: Api;
  me: StoredSession;
}

export function Messenger({ api, me }: Props) {
  const client = useMemo(
    () => new ChatClient({ api, openLink: (events) => new RealtimeSocket(api, events) }, me.userId, loadOutbox()),
    [api, me.userId],
  );
  useEffect(() => {
    client.start();
    return () => client.stop();
  }, [client]);
  const state = useSyncExternalStore(client.subscribe, client.getState);
  const status = useSyncExternalStore(client.subscribe, () => client.status);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  useUnreadInTitle(state);
  const selected = selectedId ? state.conversations[selectedId] : undefined;

  return (
    <div className="messenger">
      <aside className="sidebar">
        <header className="me">
          <div>
            <strong data-testid="my-phone">{me.phone}</strong>
            <span className={`status status-${status}`} data-testid="connection-status">{status}</span>
          </div>
          <button type="button" className="link" onClick={() => void api.logout()}>Sign out</button>
        </header>
        <NewConversation client={client} onCreated={setSelectedId} />
        <ConversationList state={state} selectedId={selectedId} onSelect={setSelectedId} />
      </aside>
      <section className="chat">
        {selected ? (
          <ChatView key={selected.id} client={client} state={state} conversation={selected} />
        ) : (
          <p className="placeholder">Choose a conversation, or start one with a phone number.</p>
        )}
      </section>
    </div>
  );
}

/** "(3) Ephemera": unread messages show in the tab while the window is elsewhere. */
function useUnreadInTitle(state: ChatState): void {
  const unread = Object.values(state.conversations).reduce((sum, c) => sum + c.unread_count, 0);
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) Ephemera` : "Ephemera";
    return () => {
      document.title = "Ephemera";
    };
  }, [unread]);
}

function NewConversation({ client, onCreated }: { client: ChatClient; onCreated: (id: string) => void }) {
  const [phones, setPhones] = useState("");
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);

  async function create(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const members = phones.split(/[,;\n]/).map((p) => p.trim()).filter(Boolean);
    try {
      const conversation = await client.createConversation(members, title.trim() || undefined);
      setPhones("");
      setTitle("");
      onCreated(conversation.id);
    } catch (caught) {
      setError(explain(caught));
    }
  }

  return (
    <form className="new-conversation" onSubmit={create} aria-label="New conversation">
      <label>
        Phone numbers
        <input value={phones} onChange={(e) => setPhones(e.target.value)} placeholder="+1 415 555 0101, ..." required />
      </label>
      <label>
        Group title (optional)
        <input value={title} onChange={(e) => setTitle(e.target.value)} />
      </label>
      <button type="submit">Start chat</button>
      {error && <p role="alert" className="error">{error}</p>}
    </form>
  );
}

interface ListProps {
  state: ChatState;
  selectedId: string | null;
  onSelect: (id: string) => void;
}

function ConversationList({ state, selectedId, onSelect }: ListProps) {
  const conversations = conversationsByActivity(state);
  if (conversations.length === 0) return <p className="placeholder">No conversations yet.</p>;
  return (
    <nav aria-label="Conversations">
      <ul className="conversations">
        {conversations.map((c) => (
          <li key={c.id}>
            <button type="button" className={c.id === selectedId ? "selected" : ""} onClick={() => onSelect(c.id)}
              data-testid="conversation">
              <span className="name">{conversationName(state, c)}</span>
              {c.unread_count > 0 && (
                <span className="badge" data-testid="unread" aria-label={`${c.unread_count} unread`}>
                  {c.unread_count}
                </span>
              )}
              <span className="preview">{preview(state, c)}</span>
            </button>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function preview(state: ChatState, c: ConversationState): string {
  const last = c.last_message;
  if (!last) return "";
  return (last.sender_id === state.me ? "You: " : "") + last.body;
}
