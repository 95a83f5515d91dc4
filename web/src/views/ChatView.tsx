import { type FormEvent, type KeyboardEvent, useEffect, useState } from "react";
import { type ChatClient, SendRefused } from "../client";
import { duration } from "../days";
import type { Member } from "../protocol";
import {
  type ChatState,
  type ConversationState,
  conversationName,
  memberName,
  othersIn,
  peerOf,
  serverNow,
} from "../store";
import { explain } from "./explain";
import { MessageList } from "./MessageList";
import { RequestActions } from "./RequestActions";
import { useAction } from "./useAction";

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

  return (
    <>
      <header className="chat-header">
        <div className="chat-title">
          <h2>{name}</h2>
          <p className="presence" data-testid="presence">{presenceLine(state, conversation, serverTime)}</p>
        </div>
        <div className="chat-tools">
          {!conversation.request && <TtlPicker client={client} conversation={conversation} />}
          {peer && !conversation.request && !peerBlocked && <BlockToggle client={client} person={peer} blocked={false} />}
          {conversation.kind === "group" && <MemberList client={client} state={state} conversation={conversation} />}
        </div>
      </header>
      <MessageList client={client} state={state} conversation={conversation} now={now} />
      {conversation.request && (
        <section className="notice request-banner" aria-label="Message request">
          <p>
            <strong>{name}</strong> wants to chat with you. Until you accept or reply, they can't see that you're
            online or that you've read their messages.
          </p>
          <RequestActions client={client} conversation={conversation} name={name} onLeft={onLeft} />
        </section>
      )}
      {peerBlocked ? (
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

/** Block or unblock one person (their messages stop showing at once). */
function BlockToggle({ client, person, blocked }: { client: ChatClient; person: Member; blocked: boolean }) {
  const { run, busy, error } = useAction();
  const name = memberName(person);
  return (
    <span className="block-toggle">
      <button type="button" className={blocked ? "secondary" : "danger"} disabled={busy}
        aria-label={`${blocked ? "Unblock" : "Block"} ${name}`}
        onClick={() => void run(() => (blocked ? client.unblock(person.user_id) : client.block(person.user_id)))}>
        {blocked ? "Unblock" : "Block"}
      </button>
      {error && <span role="alert" className="error">{error}</span>}
    </span>
  );
}

/** A group's members, each with a way to block them. */
function MemberList({ client, state, conversation }: { client: ChatClient; state: ChatState; conversation: ConversationState }) {
  return (
    <details className="members">
      <summary>Members</summary>
      <ul>
        {conversation.members.map((m) => (
          <li key={m.user_id}>
            <span className="member-name">
              {m.user_id === state.me ? "You" : memberName(m)}
              {m.role && m.role !== "member" && <span className="role"> · {m.role}</span>}
            </span>
            {m.user_id !== state.me && <BlockToggle client={client} person={m} blocked={m.user_id in state.blocked} />}
          </li>
        ))}
      </ul>
    </details>
  );
}

function Composer({ client, conversationId }: { client: ChatClient; conversationId: string }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);

  function submit(event?: FormEvent) {
    event?.preventDefault();
    try {
      client.sendMessage(conversationId, text);
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
        }}
        rows={2} placeholder="Message" autoFocus={twoPanes()} />
      <button type="submit" disabled={!text.trim()}>Send</button>
      {error && <p role="alert" className="error">{error}</p>}
    </form>
  );
}

function TtlPicker({ client, conversation }: { client: ChatClient; conversation: ConversationState }) {
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
      <select value={conversation.ttl_seconds} onChange={(e) => void change(Number(e.target.value))}>
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

function presenceLine(state: ChatState, c: ConversationState, serverTime: number): string {
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
