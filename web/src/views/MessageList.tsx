// The messages of one conversation: day separators, links, details on long-press, older pages
// when the reader reaches the top, and a "New messages" pill instead of a jump while they read
// history (useScrollKeeping: the list never scrolls under the reader's eyes).

import { type ReactNode, type RefObject, memo, useCallback, useEffect, useRef, useState } from "react";
import type { ChatClient } from "../client";
import { clockTime, dayKey, dayLabel, duration, fullDateTime, startsNewDay } from "../days";
import { linkSegments } from "../links";
import type { Message } from "../protocol";
import {
  type ChatState, type ConversationState, type Reader, type Receipt, type Unsend, canLoadOlder, memberName, readersOf,
  noticeText, noticesOf, receiptOf, serverNow, timeline, unsendOf,
} from "../store";
import { PendingMessage } from "./PendingMessage";
import { useAction } from "./useAction";
import { useLongPress } from "./useLongPress";
import { useScrollKeeping } from "./useScrollKeeping";
import { explainUnsendRefusal } from "./unsending";
import "./reading.css";
import "./account.css";

interface Props {
  client: ChatClient;
  state: ChatState;
  conversation: ConversationState;
  /** Local time, ticking: expiry countdowns and "Today" follow it. */
  now: number;
}

export function MessageList({ client, state, conversation, now }: Props) {
  const serverTime = serverNow(state, now);
  const visible = conversation.messages.filter((m) => m.expires_at > serverTime);
  const pending = state.outbox.filter((p) => p.conversation_id === conversation.id);
  const list = useRef<HTMLOListElement>(null);
  const newest = visible.at(-1);
  const scroll = useScrollKeeping(list, conversation.id, visible, pending.length, state.me);
  useReadWhileVisible(client, conversation, !scroll.readingHistory);
  const [detailsOf, setDetailsOf] = useState<number | null>(null);
  const group = conversation.kind === "group";
  const linkUp = state.link === "online";
  const conversationId = conversation.id;
  const unsend = useCallback((seq: number) => client.unsend(conversationId, seq), [client, conversationId]);
  const dismissUnsend = useCallback((req: string) => client.dismissUnsend(req), [client]);

  const items: ReactNode[] = [];
  let previous: Message | undefined;
  // who joined, left, a new timer: lines among the messages, where they happened
  timeline(visible, noticesOf(state, conversation)).forEach((item, position) => {
    if (item.kind === "notice") {
      items.push(
        <li key={`notice ${item.notice.at} ${position}`} className="chat-notice" data-testid="notice">
          {noticeText(state, conversation, item.notice)}
        </li>,
      );
      return;
    }
    const message = item.message;
    const before = previous;
    previous = message;
    if (startsNewDay(message.created_at, before?.created_at)) {
      items.push(<DaySeparator key={`day ${dayKey(message.created_at)}`} at={message.created_at} now={now} />);
    }
    const mine = message.sender_id === state.me;
    const open = detailsOf === message.seq;
    items.push(
      <MessageItem
        key={message.seq}
        message={message}
        mine={mine}
        sender={group ? senderName(conversation, message) : null}
        expiresIn={duration(message.expires_at - serverTime)}
        receipt={receiptOf(state, conversation, message)}
        readers={open && mine && group ? readersOf(state, conversation, message) : null}
        canShowReaders={mine && group}
        detailsOpen={open}
        onDetails={setDetailsOf}
        unsend={mine ? unsendOf(state, conversation.id, message.seq) : undefined}
        linkUp={linkUp}
        onUnsend={unsend}
        onDismissUnsend={dismissUnsend}
      />,
    );
  });
  const pendingNewDay = pending.length > 0 && startsNewDay(pending[0].queued_at, newest?.created_at);

  return (
    <div className="message-list">
      <ol ref={list} className="messages" role="log" aria-label="Messages" aria-live="polite" onScroll={scroll.onScroll}>
        <OlderMessages client={client} conversation={conversation} root={list} />
        {items}
        {pendingNewDay && <DaySeparator at={pending[0].queued_at} now={now} />}
        {pending.map((p) => (
          <PendingMessage key={p.client_msg_id} client={client} pending={p} outbox={state.outbox} link={state.link} now={now} />
        ))}
      </ol>
      {scroll.unseen && (
        <button type="button" className="new-messages-pill" data-testid="new-messages" onClick={scroll.toBottom}>
          New messages ↓
        </button>
      )}
    </div>
  );
}

function DaySeparator({ at, now }: { at: number; now: number }) {
  return (
    <li className="day-separator" data-testid="day-separator">
      <time dateTime={dayKey(at)}>{dayLabel(at, now)}</time>
    </li>
  );
}

/** At the top while older messages remain: reaching it (or the button, for keyboards) loads
 * the page before, once the newest page has come. The observer is set up again whenever the
 * window grows, so a page that leaves this still in sight is followed by the next one. */
function OlderMessages({ client, conversation, root }: {
  client: ChatClient;
  conversation: ConversationState;
  root: RefObject<HTMLOListElement | null>;
}) {
  const sentinel = useRef<HTMLLIElement>(null);
  const { run, busy, error } = useAction();
  const { id, has_older: hasOlder, loaded_from: loadedFrom } = conversation;
  const ready = canLoadOlder(conversation);
  const load = useCallback(() => void run(() => client.loadOlder(id)), [run, client, id]);
  useEffect(() => {
    if (!ready || !sentinel.current || typeof IntersectionObserver === "undefined") return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) load();
      },
      { root: root.current, rootMargin: "200px 0px 0px 0px" },
    );
    observer.observe(sentinel.current);
    return () => observer.disconnect();
  }, [ready, loadedFrom, load, root]);
  if (!hasOlder) return null;
  return (
    <li ref={sentinel} className="older-messages" data-testid="older-messages">
      {busy ? (
        <span role="status">Loading older messages…</span>
      ) : (
        <>
          {error && <span role="alert" className="error">{error} </span>}
          <button type="button" className="link" onClick={load} disabled={!ready}>
            {error ? "Try again" : "Load older messages"}
          </button>
        </>
      )}
    </li>
  );
}

interface MessageProps {
  message: Message;
  mine: boolean;
  sender: string | null;
  expiresIn: string;
  receipt: Receipt;
  /** For my message in a group with its details open: each other member's receipt. */
  readers: Reader[] | null;
  canShowReaders: boolean;
  detailsOpen: boolean;
  onDetails: (seq: number | null) => void;
  /** My message's unsend, while it is on its way or after it was refused. */
  unsend: Unsend | undefined;
  /** Unsend needs the live link: offline, the action says so instead. */
  linkUp: boolean;
  /** Throws SendRefused (in words) when the unsend cannot be asked. */
  onUnsend: (seq: number) => void;
  onDismissUnsend: (req: string) => void;
}

/** Memoised on what it shows: a new message or a tick re-renders only the items that change. */
const MessageItem = memo(function MessageItem(props: MessageProps) {
  const { message, mine, sender, expiresIn, receipt, readers, canShowReaders, detailsOpen, onDetails } = props;
  const { unsend, linkUp, onUnsend, onDismissUnsend } = props;
  const toggle = () => onDetails(detailsOpen ? null : message.seq);
  const press = useLongPress(() => onDetails(message.seq));
  const unsending = unsend !== undefined && unsend.refused === undefined;
  const classes = `message ${mine ? "mine" : "theirs"}${unsending ? " unsending" : ""}`;
  return (
    <li className={classes} data-testid="message" data-seq={message.seq} aria-busy={unsending || undefined} {...press}>
      {!mine && sender && <p className="sender">{sender}</p>}
      <p className="body" data-testid="body"><Body text={message.body} /></p>
      <p className="meta">
        <time dateTime={new Date(message.created_at).toISOString()} title={fullDateTime(message.created_at)}>
          {clockTime(message.created_at)}
        </time>
        {" · "}
        <span data-testid="expires-in">expires in {expiresIn}</span>
        {mine && unsending && (
          <>
            {" · "}
            <span role="status" data-testid="unsending">Unsending…</span>
          </>
        )}
        {mine && !unsending && (
          <>
            {" · "}
            {canShowReaders ? (
              <button type="button" className="link receipt" data-testid="receipt" aria-expanded={detailsOpen}
                aria-label={`${receipt}: who has read it`} onClick={toggle}>{receipt}</button>
            ) : (
              <span className="receipt" data-testid="receipt">{receipt}</span>
            )}
          </>
        )}
        {mine && !detailsOpen && (
          <button type="button" className="link message-actions" aria-label="Message actions"
            onClick={() => onDetails(message.seq)}>⋯</button>
        )}
      </p>
      {unsend?.refused !== undefined && (
        <p className="unsend-refused" data-testid="unsend-refused">
          <span role="alert">{explainUnsendRefusal(unsend.refused)}</span>{" "}
          <button type="button" className="link" onClick={() => onDismissUnsend(unsend.req)}>OK</button>
        </p>
      )}
      {detailsOpen && (
        <MessageDetails message={message} readers={readers} onClose={() => onDetails(null)}>
          {mine && !unsending && (
            <UnsendAction linkUp={linkUp} onUnsend={() => {
              onUnsend(message.seq);
              onDetails(null);
            }} />
          )}
        </MessageDetails>
      )}
    </li>
  );
});

const RECEIPT_WORDS: Record<Receipt, string> = { read: "Read", delivered: "Delivered", sent: "Sent" };

function MessageDetails({ message, readers, onClose, children }: {
  message: Message;
  readers: Reader[] | null;
  onClose: () => void;
  children?: ReactNode;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    box.current?.scrollIntoView({ block: "nearest" }); // opened at the bottom edge: in sight
  }, []);
  return (
    <div ref={box} className="message-details" data-testid="message-details" role="group" aria-label="Message details">
      <p>Sent {fullDateTime(message.created_at)}</p>
      {readers && (
        <ul className="readers" aria-label="Who has read it">
          {readers.map(({ member, receipt }) => (
            <li key={member.user_id} data-testid="reader">
              <span className="reader-name">{memberName(member)}</span>
              <span className={`reader-receipt ${receipt}`}>{RECEIPT_WORDS[receipt]}</span>
            </li>
          ))}
        </ul>
      )}
      {children}
      <button type="button" className="link" onClick={onClose}>Close</button>
    </div>
  );
}

/** "Unsend" on my sent message, asked twice (it is deleted for everyone, for good); only while
 * the link is up, else it says why not. */
function UnsendAction({ linkUp, onUnsend }: { linkUp: boolean; onUnsend: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const confirm = () => {
    try {
      onUnsend();
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
      setConfirming(false);
    }
  };
  if (!linkUp) {
    return (
      <p className="unsend-action">
        <button type="button" className="danger" disabled aria-describedby="unsend-offline">Unsend</button>{" "}
        <span className="hint" id="unsend-offline">You're offline: unsending needs a connection.</span>
      </p>
    );
  }
  if (confirming) {
    return (
      <div className="unsend-action" role="group" aria-label="Unsend this message?">
        <p>Unsend this message? It is deleted for everyone in this chat.</p>
        <button type="button" className="danger" onClick={confirm}>Unsend for everyone</button>{" "}
        <button type="button" className="secondary" onClick={() => setConfirming(false)}>Cancel</button>
      </div>
    );
  }
  return (
    <p className="unsend-action">
      <button type="button" className="danger" onClick={() => setConfirming(true)}>Unsend</button>
      {problem && <span role="alert" className="error"> {problem}</span>}
    </p>
  );
}

/** A body as text, with its http(s) addresses as links that open apart from this page. */
function Body({ text }: { text: string }) {
  return (
    <>
      {linkSegments(text).map((segment, index) =>
        segment.kind === "link" ? (
          <a key={index} href={segment.href} target="_blank" rel="noopener noreferrer">{segment.text}</a>
        ) : (
          segment.text
        ),
      )}
    </>
  );
}

function senderName(conversation: ConversationState, message: Message): string {
  const sender = conversation.members.find((m) => m.user_id === message.sender_id);
  return sender ? memberName(sender) : "someone";
}

/** While this conversation is on screen, the window has focus and the reader is at the newest
 * messages (not reading history), what arrives is read. */
function useReadWhileVisible(client: ChatClient, conversation: ConversationState, atNewest: boolean): void {
  const newest = conversation.messages.at(-1)?.seq ?? 0;
  useEffect(() => {
    const markIfSeen = () => {
      if (atNewest && document.visibilityState === "visible" && document.hasFocus()) client.markRead(conversation.id);
    };
    markIfSeen();
    window.addEventListener("focus", markIfSeen);
    document.addEventListener("visibilitychange", markIfSeen);
    return () => {
      window.removeEventListener("focus", markIfSeen);
      document.removeEventListener("visibilitychange", markIfSeen);
    };
  }, [client, conversation.id, newest, conversation.read_seq, atNewest]);
}
