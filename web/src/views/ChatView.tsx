import { type FormEvent, type KeyboardEvent, useEffect, useRef, useState } from "react";
import { type ChatClient, SendRefused } from "../client";
import { duration } from "../days";
import {
  type ChatState,
  type ConversationState,
  conversationName,
  othersIn,
  peerDeleted,
  peerOf,
  serverNow,
  typingLine,
  typingNames,
} from "../store";
import { explain } from "./explain";
import { BlockToggle, MembersPanel } from "./MembersPanel";
import { MessageList } from "./MessageList";
import { RequestActions } from "./RequestActions";

interface Props {
  client: ChatClient;
  state: ChatState;
  conversation: ConversationState;
  /** This conversation left my list from here (a declined request): what to tell the person. */
  onLeft: (notice: string) => void;
}

const TTL_CHOICES: [number, string][] = [
  [10, "10 seconds"],
  [60, "1 minute"],
  [3600, "1 hour"],
  [86400, "1 day"],
  [7 * 86400, "1 week"],
  [30 * 86400, "30 days"],
];

export function ChatView({ client, state, conversation, onLeft }: Props) {
  const now = useNow(1_000);
  const serverTime = serverNow(state, now);
  const name = conversationName(state, conversation);
  const peer = peerOf(state, conversation);
  const peerBlocked = peer !== undefined && peer.user_id in state.blocked;
  const deleted = peerDeleted(state, conversation);
  const [membersOpen, setMembersOpen] = useState(false);
  const membersButton = useRef<HTMLButtonElement>(null);
  const closeMembers = () => {
    setMembersOpen(false);
    membersButton.current?.focus(); // back where the person was
  };
  const group = conversation.kind === "group";

  return (
    <>
      <header className="chat-header">
        <div className="chat-title">
          <h2 data-testid="chat-name">{name}</h2>
          {peer?.display_name?.trim() && <p className="chat-phone" data-testid="chat-phone">{peer.phone}</p>}
          <p className="presence" data-testid="presence">{presenceLine(state, conversation, serverTime)}</p>
        </div>
        <div className="chat-tools">
          {!conversation.request && !deleted && (
            <TtlPicker client={client} conversation={conversation} canChange={!group || managesGroup(state, conversation)} />
          )}
          {peer && !conversation.request && !peerBlocked && <BlockToggle client={client} person={peer} blocked={false} />}
          {group && (
            <button ref={membersButton} type="button" className="secondary members-button" aria-expanded={membersOpen}
              onClick={() => setMembersOpen((open) => !open)}>
              Members
            </button>
          )}
        </div>
      </header>
      {group && membersOpen && (
        <MembersPanel client={client} state={state} conversation={conversation} onClose={closeMembers}
          onLeft={onLeft} />
      )}
      <MessageList client={client} state={state} conversation={conversation} now={now} />
      <TypingLine state={state} conversation={conversation} now={now} />
      {conversation.request && (
        <section className="notice request-banner" aria-label="Message request">
          <p>
            <strong>{name}</strong> wants to chat with you. Until you accept or reply, they can't see that you're
            online or that you've read their messages.
          </p>
          <RequestActions client={client} conversation={conversation} name={name} onLeft={onLeft} />
        </section>
      )}
      {deleted ? (
        <section className="notice deleted-banner" aria-label="Deleted account" data-testid="deleted-account">
          <p>This account was deleted. Messages sent here reach nobody.</p>
        </section>
      ) : peerBlocked ? (
        <section className="notice blocked-banner" aria-label="Blocked">
          <p>You blocked {name}. They can't send you messages.</p>
          <BlockToggle client={client} person={peer} blocked />
        </section>
      ) : (
        <Composer client={client} conversationId={conversation.id} />
      )}
    </>
  );
}

function Composer({ client, conversationId }: { client: ChatClient; conversationId: string }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  // another chat opened, or this one closed: I am not typing here any more
  useEffect(() => () => client.typingStopped(conversationId), [client, conversationId]);

  function submit(event?: FormEvent) {
    event?.preventDefault();
    try {
      client.sendMessage(conversationId, text);
      client.typingStopped(conversationId);
      setText("");
      setError(null);
    } catch (caught) {
      if (!(caught instanceof SendRefused)) throw caught;
      setError(caught.message);
    }
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey) submit(event);
  }

  return (
    <form className="composer" onSubmit={submit} aria-label="Send a message">
      <label className="visually-hidden" htmlFor="composer-text">Message</label>
      <textarea id="composer-text" value={text} onKeyDown={onKeyDown}
        onChange={(e) => {
          setText(e.target.value);
          client.probeLink(); // the link shown must be true by the time they send
          client.typing(conversationId, e.target.value);
        }}
        rows={2} placeholder="Message" autoFocus={twoPanes()} />
      <button type="submit" disabled={!text.trim()}>Send</button>
      {error && <p role="alert" className="error">{error}</p>}
    </form>
  );
}

/** In a group only the owner and admins change its settings (the server refuses the others). */
function managesGroup(state: ChatState, c: ConversationState): boolean {
  const role = c.members.find((m) => m.user_id === state.me)?.role;
  return role === "owner" || role === "admin";
}

function TtlPicker({ client, conversation, canChange }: {
  client: ChatClient;
  conversation: ConversationState;
  canChange: boolean;
}) {
  const [error, setError] = useState<string | null>(null);
  const choices = TTL_CHOICES.some(([s]) => s === conversation.ttl_seconds)
    ? TTL_CHOICES
    : [...TTL_CHOICES, [conversation.ttl_seconds, duration(conversation.ttl_seconds * 1000)] as [number, string]];
  async function change(ttl: number) {
    setError(null);
    try {
      await client.updateConversation(conversation.id, { ttl_seconds: ttl });
    } catch (caught) {
      setError(explain(caught));
    }
  }
  return (
    <label className="ttl">
      Messages expire after
      <select value={conversation.ttl_seconds} onChange={(e) => void change(Number(e.target.value))} disabled={!canChange}
        title={canChange ? undefined : "Only the group's owner and admins can change this"}>
        {choices.map(([seconds, label]) => (
          <option key={seconds} value={seconds}>{label}</option>
        ))}
      </select>
      {error && <span role="alert" className="error">{error}</span>}
    </label>
  );
}

function useNow(everyMs: number): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(timer);
  }, [everyMs]);
  return now;
}

/** "Bob is typing…" above the composer (stale after 6 s without a refresh). */
function TypingLine({ state, conversation, now }: { state: ChatState; conversation: ConversationState; now: number }) {
  const line = typingLine(typingNames(state, conversation, now));
  return <p className="typing-line" data-testid="typing" aria-live="polite">{line}</p>;
}

function presenceLine(state: ChatState, c: ConversationState, serverTime: number): string {
  if (peerDeleted(state, c)) return "";
  const others = othersIn(state, c);
  if (c.kind === "group") {
    const online = others.filter((m) => m.online).length;
    return `${others.length + 1} members, ${online} ${online === 1 ? "other" : "others"} online`;
  }
  const [peer] = others;
  if (!peer || peer.online === null) return "";
  if (peer.online) return "online";
  return peer.last_seen_at ? `last seen ${duration(serverTime - peer.last_seen_at)} ago` : "offline";
}

/** Wide enough for the list beside the chat (styles.css). Only there does opening a chat put
 * the cursor in the composer: on a phone that would pop the keyboard over what one came to read. */
function twoPanes(): boolean {
  return window.matchMedia("(min-width: 700px)").matches;
}
