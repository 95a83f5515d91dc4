import { type FormEvent, type KeyboardEvent, memo, useEffect, useRef, useState } from "react";
import { type ChatClient, SendRefused } from "../client";
import type { Message } from "../protocol";
import {
  type ChatState,
  type ConversationState,
  conversationName,
  othersIn,
  receiptOf,
  serverNow,
} from "../store";
import { explain } from "./explain";

interface Props {
  client: ChatClient;
  state: ChatState;
  conversation: ConversationState;
}

const TTL_CHOICES: [number, string][] = [
  [10, "10 seconds"],
  [60, "1 minute"],
  [3600, "1 hour"],
  [86400, "1 day"],
  [7 * 86400, "1 week"],
  [30 * 86400, "30 days"],
];

export function ChatView({ client, state, conversation }: Props) {
  const now = useNow(1_000);
  const serverTime = serverNow(state, now);
  const visible = conversation.messages.filter((m) => m.expires_at > serverTime);
  const pending = state.outbox.filter((p) => p.conversation_id === conversation.id);
  useReadWhileVisible(client, conversation);
  const bottom = useRef<HTMLLIElement>(null);
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [visible.length, pending.length]);

  return (
    <>
      <header className="chat-header">
        <div>
          <h2>{conversationName(state, conversation)}</h2>
          <p className="presence" data-testid="presence">{presenceLine(state, conversation, serverTime)}</p>
        </div>
        <TtlPicker client={client} conversation={conversation} />
      </header>
      <ol className="messages" role="log" aria-label="Messages" aria-live="polite">
        {visible.map((message) => (
          <MessageItem
            key={message.seq}
            message={message}
            mine={message.sender_id === state.me}
            sender={conversation.kind === "group" ? senderPhone(conversation, message) : null}
            expiresIn={duration(message.expires_at - serverTime)}
            receipt={receiptOf(state, conversation, message)}
          />
        ))}
        {pending.map((p) => (
          <li key={p.client_msg_id} className="message mine pending" data-testid="pending-message">
            <p className="body" data-testid="body">{p.body}</p>
            <p className="meta">
              {p.failed ? (
                <>
                  Not sent ({p.failed}){" "}
                  <button type="button" className="link" onClick={() => client.discardFailed(p.client_msg_id)}>Discard</button>
                </>
              ) : (
                "Sending…"
              )}
            </p>
          </li>
        ))}
        <li ref={bottom} aria-hidden="true" />
      </ol>
      <Composer client={client} conversationId={conversation.id} />
    </>
  );
}

interface MessageProps {
  message: Message;
  mine: boolean;
  sender: string | null;
  expiresIn: string;
  receipt: string;
}

/** Memoised on what it shows: a new message or a tick re-renders only the items that change. */
const MessageItem = memo(function MessageItem({ message, mine, sender, expiresIn, receipt }: MessageProps) {
  return (
    <li className={`message ${mine ? "mine" : "theirs"}`} data-testid="message" data-seq={message.seq}>
      {!mine && sender && <p className="sender">{sender}</p>}
      <p className="body" data-testid="body">{message.body}</p>
      <p className="meta">
        <time dateTime={new Date(message.created_at).toISOString()}>{clockTime(message.created_at)}</time>
        {" · "}
        <span data-testid="expires-in">expires in {expiresIn}</span>
        {mine && (
          <>
            {" · "}
            <span className="receipt" data-testid="receipt">{receipt}</span>
          </>
        )}
      </p>
    </li>
  );
});

function senderPhone(conversation: ConversationState, message: Message): string {
  return conversation.members.find((m) => m.user_id === message.sender_id)?.phone ?? "someone";
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
      <textarea id="composer-text" value={text} onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown}
        rows={2} placeholder="Message" autoFocus />
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

/** While this conversation is on screen and the window has focus, what arrives is read. */
function useReadWhileVisible(client: ChatClient, conversation: ConversationState): void {
  const newest = conversation.messages.at(-1)?.seq ?? 0;
  useEffect(() => {
    const markIfSeen = () => {
      if (document.visibilityState === "visible" && document.hasFocus()) client.markRead(conversation.id);
    };
    markIfSeen();
    window.addEventListener("focus", markIfSeen);
    document.addEventListener("visibilitychange", markIfSeen);
    return () => {
      window.removeEventListener("focus", markIfSeen);
      document.removeEventListener("visibilitychange", markIfSeen);
    };
  }, [client, conversation.id, newest, conversation.read_seq]);
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

export function duration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" }); // built once: costly

function clockTime(ms: number): string {
  return CLOCK.format(ms);
}
