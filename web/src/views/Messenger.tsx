import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import type { Api } from "../api";
import { ChatClient } from "../client";
import { type OpenPane, type StoredSession, loadOpenPane, loadOutbox, saveOpenPane } from "../session";
import { RealtimeSocket } from "../socket";
import {
  type ChatState, type ConversationState, conversationName, conversationsByActivity, memberName, totalUnread, unreadCount,
} from "../store";
import { ChatView } from "./ChatView";
import { LinkStatus } from "./LinkStatus";
import { NewChat } from "./NewChat";
import { RequestActions } from "./RequestActions";
import { Settings } from "./Settings";

interface Props {
  api: Api;
  me: StoredSession;
}

/** What the right pane shows (on a phone, the whole screen; "none" shows the list there). Later
 * screens (a person's profile, a group's members) are new kinds here, each with its Back. */
type Pane = OpenPane | { kind: "none"; notice?: string };

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
  const status = state.link;
  const { pane, open, close, left } = usePane();
  useEffect(() => {
    // a clicked notification opens its chat (the notifier has focused the tab)
    client.notifications.onOpen = (id) => open({ kind: "chat", id });
    return () => {
      client.notifications.onOpen = null;
    };
  }, [client, open]);
  useUnreadInTitle(state);
  useFocusBackOnTheList(pane);
  const selectedId = pane.kind === "chat" ? pane.id : null;
  const selected = selectedId ? state.conversations[selectedId] : undefined;
  useEffect(() => {
    // a big group's online dots come from the list, which the client reads again while it is shown
    client.showing(selectedId);
    return () => client.showing(null);
  }, [client, selectedId]);
  // a chat restored after a reload that the list (loaded before the link goes online) no longer has
  const gone = selectedId !== null && !selected && status === "online";
  const shown: Pane = gone ? { kind: "none" } : pane;
  const select = (id: string) => open({ kind: "chat", id });
  const myName = state.profile?.display_name?.trim();

  return (
    <div className={shown.kind === "none" ? "messenger showing-list" : "messenger showing-pane"}>
      <aside className="sidebar">
        <header className="me">
          <div className="me-who">
            {myName && <strong className="my-name" data-testid="my-name">{myName}</strong>}
            <span className={myName ? "my-phone" : "my-phone strong"} data-testid="my-phone">{me.phone}</span>
            <LinkStatus link={status} outbox={state.outbox} />
          </div>
          <div className="me-actions">
            <button type="button" className={shown.kind === "settings" ? "link selected" : "link"}
              aria-pressed={shown.kind === "settings"} onClick={() => open({ kind: "settings" })}>Settings</button>
            <button type="button" className="link" onClick={() => void api.logout()}>Sign out</button>
          </div>
          <button type="button" className="primary new-chat-button" aria-pressed={shown.kind === "new"}
            onClick={() => open({ kind: "new" })}>New chat</button>
        </header>
        {shown.kind === "none" && shown.notice && <p className="list-notice" role="status">{shown.notice}</p>}
        <div className="lists">
          <RequestList client={client} state={state} selectedId={selectedId} onSelect={select} onLeft={left} />
          <ConversationList state={state} selectedId={selectedId} onSelect={select} />
        </div>
      </aside>
      <section className="chat">
        {shown.kind !== "none" && (
          <button type="button" className="back" aria-label="Back" onClick={close}>
            <span aria-hidden="true">‹</span>
          </button>
        )}
        {shown.kind === "settings" ? (
          <Settings client={client} state={state} phone={me.phone} onClose={close} />
        ) : shown.kind === "new" ? (
          <NewChat client={client} onCreated={select} onClose={close} />
        ) : selected ? (
          <ChatView key={selected.id} client={client} state={state} conversation={selected} onLeft={left} />
        ) : shown.kind === "chat" ? (
          <p className="placeholder" role="status">Opening the chat…</p>
        ) : (
          <p className="placeholder" role={shown.notice ? "status" : undefined}>
            {shown.notice || "Choose a conversation, or start a new chat."}
          </p>
        )}
      </section>
    </div>
  );
}

/** The open pane, kept in sessionStorage (per tab, like the session) so a reload reopens it.
 * Opening one from the list adds a history entry, so the browser's (a phone's) Back closes it
 * instead of leaving the app. */
function usePane() {
  const [pane, setPane] = useState<Pane>(() => loadOpenPane() ?? { kind: "none" });
  useEffect(() => {
    saveOpenPane(pane.kind === "none" ? null : pane);
  }, [pane]);
  useEffect(() => {
    const closeOnBack = (event: PopStateEvent) => {
      if (!isPaneEntry(event.state)) setPane({ kind: "none" });
    };
    window.addEventListener("popstate", closeOnBack);
    return () => window.removeEventListener("popstate", closeOnBack);
  }, []);

  const open = (next: OpenPane) => {
    if (!isPaneEntry(history.state)) history.pushState({ [PANE_ENTRY]: true }, "");
    setPane(next);
  };
  const close = () => {
    if (isPaneEntry(history.state)) history.back(); // popstate closes it
    else setPane({ kind: "none" });
  };
  /** The open chat went away (a declined request): the list, with a word why. */
  const left = (notice: string) => {
    if (isPaneEntry(history.state)) history.replaceState(null, "");
    setPane({ kind: "none", notice });
  };
  return { pane, open, close, left };
}

const PANE_ENTRY = "ephemeraPane";

function isPaneEntry(state: unknown): boolean {
  return typeof state === "object" && state !== null && PANE_ENTRY in state;
}

/** Back from a chat (a phone's one pane) puts keyboard focus on that chat in the list, where
 * the person was, not at the top of the page. */
function useFocusBackOnTheList(pane: Pane): void {
  const lastChat = useRef<string | null>(null);
  useEffect(() => {
    if (pane.kind === "chat") {
      lastChat.current = pane.id;
      return;
    }
    const id = lastChat.current;
    lastChat.current = null;
    if (pane.kind !== "none" || id === null) return;
    document.querySelector<HTMLElement>(`[data-conversation-id="${CSS.escape(id)}"]`)?.focus();
  }, [pane]);
}

/** "(3) Ephemera": unread messages show in the tab while the window is elsewhere. */
function useUnreadInTitle(state: ChatState): void {
  const unread = totalUnread(state);
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) Ephemera` : "Ephemera";
    return () => {
      document.title = "Ephemera";
    };
  }, [unread]);
}

interface ListProps {
  state: ChatState;
  selectedId: string | null;
  onSelect: (id: string) => void;
}

/** Chats someone new started with me: apart from my chats, each with its three answers. */
function RequestList({ client, state, selectedId, onSelect, onLeft }: ListProps & {
  client: ChatClient;
  onLeft: (notice: string) => void;
}) {
  const requests = conversationsByActivity(state).filter((c) => c.request);
  if (requests.length === 0) return null;
  return (
    <nav aria-label="Message requests" className="requests">
      <h3 className="section-title">
        Message requests{" "}
        <span className="count">{requests.length}<span className="visually-hidden"> waiting</span></span>
      </h3>
      <p className="section-hint">They won't see that you're online or have read their messages until you accept.</p>
      <ul className="conversations">
        {requests.map((c) => (
          <li key={c.id} className={c.id === selectedId ? "request selected" : "request"} data-testid="request">
            <ConversationButton state={state} c={c} selected={c.id === selectedId} onSelect={onSelect} />
            <RequestActions client={client} conversation={c} name={conversationName(state, c)} compact
              onLeft={(notice) => {
                if (c.id === selectedId) onLeft(notice);
              }} />
          </li>
        ))}
      </ul>
    </nav>
  );
}

function ConversationList({ state, selectedId, onSelect }: ListProps) {
  const all = conversationsByActivity(state);
  const chats = all.filter((c) => !c.request);
  if (chats.length === 0) {
    return <p className="placeholder">{all.length === 0 ? "No conversations yet." : "No chats yet."}</p>;
  }
  return (
    <nav aria-label="Chats">
      {all.length > chats.length && <h3 className="section-title">Chats</h3>}
      <ul className="conversations">
        {chats.map((c) => (
          <li key={c.id}>
            <ConversationButton state={state} c={c} selected={c.id === selectedId} onSelect={onSelect} />
          </li>
        ))}
      </ul>
    </nav>
  );
}

interface ButtonProps {
  state: ChatState;
  c: ConversationState;
  selected: boolean;
  onSelect: (id: string) => void;
}

function ConversationButton({ state, c, selected, onSelect }: ButtonProps) {
  const unread = unreadCount(state, c);
  return (
    <button type="button" className={selected ? "conversation-button selected" : "conversation-button"}
      onClick={() => onSelect(c.id)} aria-current={selected ? "true" : undefined} data-testid="conversation"
      data-conversation-id={c.id}>
      <span className="name">{conversationName(state, c)}</span>
      {unread > 0 && (
        <span className="badge" data-testid="unread" aria-label={`${unread} unread`}>{unread}</span>
      )}
      <span className="preview">{preview(state, c)}</span>
    </button>
  );
}

function preview(state: ChatState, c: ConversationState): string {
  const last = c.last_message;
  if (!last) return "";
  if (last.sender_id === state.me) return "You: " + last.body;
  if (c.kind === "group") {
    const sender = c.members.find((m) => m.user_id === last.sender_id);
    if (sender) return `${memberName(sender)}: ${last.body}`;
  }
  return last.body;
}
