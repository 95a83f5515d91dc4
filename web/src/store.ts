// The client's state and the one function that changes it. Pure: no I/O, no clock of its own
// (every time comes in the action), so the rules below are unit-tested without a server.

import type { Conversation, ConversationList, Member, Message, ServerFrame, SyncEntry } from "./protocol";

/** A message this device has accepted from the user and not yet seen confirmed by `sent`. */
export interface PendingSend {
  client_msg_id: string;
  conversation_id: string;
  body: string;
  queued_at: number;
  /** Set when the server refused it for good (`too_large`, `not_found`...): never retried. */
  failed?: string;
  /** A `rate_limited` refusal: not before this local time. */
  retry_at?: number;
}

export interface ConversationState {
  id: string;
  kind: Conversation["kind"];
  title: string | null;
  ttl_seconds: number;
  last_seq: number;
  read_seq: number;
  unread_count: number;
  members: Member[];
  /** Unexpired messages this device holds, ascending `seq`, one per seq. */
  messages: Message[];
  /** The newest message known, even before the messages themselves arrive (list preview). */
  last_message: Message | null;
  /** This device holds every message up to here: the `sync` cursor and what `ack` reports. */
  held_seq: number;
}

export interface ChatState {
  me: string;
  /** server time minus local time, from the last `server_time` seen. */
  clock_offset_ms: number;
  conversations: Record<string, ConversationState>;
  outbox: PendingSend[];
}

export type Action =
  | { type: "conversations_loaded"; list: ConversationList; now: number }
  | { type: "conversation_loaded"; conversation: Conversation }
  | { type: "frame"; frame: ServerFrame; now: number }
  | { type: "send_queued"; pending: PendingSend }
  | { type: "send_refused"; client_msg_id: string; code: string; retry_at?: number }
  | { type: "send_discarded"; client_msg_id: string }
  | { type: "read_locally"; conversation_id: string; seq: number }
  | { type: "expire_due"; now: number };

export function initialState(me: string, outbox: PendingSend[] = []): ChatState {
  return { me, clock_offset_ms: 0, conversations: {}, outbox };
}

export function serverNow(state: ChatState, now: number): number {
  return now + state.clock_offset_ms;
}

export function reduce(state: ChatState, action: Action): ChatState {
  switch (action.type) {
    case "conversations_loaded":
      return loadConversations(state, action.list, action.now);
    case "conversation_loaded":
      return putConversation(state, fromServer(action.conversation, state.conversations[action.conversation.id]));
    case "frame":
      return applyFrame(state, action.frame, action.now);
    case "send_queued":
      return { ...state, outbox: [...state.outbox, action.pending] };
    case "send_refused":
      return {
        ...state,
        outbox: state.outbox.map((p) =>
          p.client_msg_id !== action.client_msg_id
            ? p
            : action.retry_at !== undefined
              ? { ...p, retry_at: action.retry_at }
              : { ...p, failed: action.code },
        ),
      };
    case "send_discarded":
      return { ...state, outbox: state.outbox.filter((p) => p.client_msg_id !== action.client_msg_id) };
    case "read_locally":
      return updateConversation(state, action.conversation_id, (c) =>
        action.seq <= c.read_seq ? c : { ...c, read_seq: action.seq, unread_count: unreadAfter(state.me, c, action.seq) },
      );
    case "expire_due":
      return dropDue(state, serverNow(state, action.now));
  }
}

function applyFrame(state: ChatState, frame: ServerFrame, now: number): ChatState {
  switch (frame.type) {
    case "message":
      return receiveMessage(state, stripType(frame));
    case "sent":
      return confirmSend(state, frame);
    case "receipt":
      return updateMember(state, frame.conversation_id, frame.user_id, (m) =>
        frame.kind === "read"
          ? { ...m, read_seq: Math.max(m.read_seq ?? 0, frame.seq) }
          : { ...m, delivered_seq: Math.max(m.delivered_seq ?? 0, frame.seq) },
      );
    case "unread":
      return updateConversation(state, frame.conversation_id, (c) => ({ ...c, unread_count: frame.count }));
    case "presence":
      return setPresence(state, frame.user_id, frame.online, frame.last_seen_at);
    case "sync": {
      const synced = frame.conversations.reduce(applySyncEntry, state);
      return { ...synced, clock_offset_ms: frame.server_time - now };
    }
    case "expired":
      return updateConversation(state, frame.conversation_id, (c) => {
        const gone = (seq: number) => seq <= frame.up_to_seq || frame.ranges.some(([from, to]) => seq >= from && seq <= to);
        return withMessages(c, c.messages.filter((m) => !gone(m.seq)), c.last_message !== null && gone(c.last_message.seq));
      });
    case "pong":
      return { ...state, clock_offset_ms: frame.server_time - now };
    case "error":
      return state; // the controller matches errors to what it asked (by `req`)
  }
}

function loadConversations(state: ChatState, list: ConversationList, now: number): ChatState {
  const conversations: Record<string, ConversationState> = {};
  for (const conversation of list.conversations) {
    conversations[conversation.id] = fromServer(conversation, state.conversations[conversation.id]);
  }
  return { ...state, conversations, clock_offset_ms: list.server_time - now };
}

function fromServer(conversation: Conversation, held?: ConversationState): ConversationState {
  const { last_message, ...fields } = conversation;
  const messages = held?.messages ?? [];
  const base: ConversationState = { ...fields, messages: [], last_message, held_seq: held?.held_seq ?? 0 };
  return withMessages(base, messages, false);
}

function receiveMessage(state: ChatState, message: Message): ChatState {
  const conversation = state.conversations[message.conversation_id];
  if (!conversation) return state; // unknown conversation: the controller reloads the list
  if (conversation.messages.some((m) => m.seq === message.seq)) return state;
  const counts = isUnread(state.me, message, conversation.read_seq);
  const merged = withMessages(conversation, insertBySeq(conversation.messages, [message]), false);
  return putConversation(state, advanceHeld({
    ...merged,
    last_seq: Math.max(conversation.last_seq, message.seq),
    unread_count: conversation.unread_count + (counts ? 1 : 0),
  }));
}

function confirmSend(state: ChatState, sent: Extract<ServerFrame, { type: "sent" }>): ChatState {
  const pending = state.outbox.find((p) => p.client_msg_id === sent.client_msg_id);
  const rest = { ...state, outbox: state.outbox.filter((p) => p !== pending) };
  if (!pending || sent.expired) return rest;
  return receiveMessage(rest, {
    conversation_id: sent.conversation_id,
    message_id: sent.message_id,
    seq: sent.seq,
    sender_id: state.me,
    sender_device_id: "",
    client_msg_id: sent.client_msg_id,
    body: pending.body,
    created_at: sent.created_at,
    expires_at: sent.expires_at,
  });
}

function applySyncEntry(state: ChatState, entry: SyncEntry): ChatState {
  return updateConversation(state, entry.conversation_id, (c) => {
    const kept = c.messages.filter((m) => m.seq >= entry.first_seq);
    const merged = withMessages(c, insertBySeq(kept, entry.messages), false);
    const newestInPage = entry.messages.at(-1)?.seq ?? c.held_seq;
    return advanceHeld({
      ...merged,
      last_seq: Math.max(c.last_seq, entry.last_seq),
      read_seq: Math.max(c.read_seq, entry.read_seq),
      unread_count: entry.unread_count,
      held_seq: Math.max(c.held_seq, entry.has_more ? newestInPage : entry.last_seq),
    });
  });
}

function dropDue(state: ChatState, serverTime: number): ChatState {
  let changed = false;
  const conversations: Record<string, ConversationState> = {};
  for (const [id, c] of Object.entries(state.conversations)) {
    const alive = c.messages.filter((m) => m.expires_at > serverTime);
    const previewDue = c.last_message !== null && c.last_message.expires_at <= serverTime;
    if (alive.length === c.messages.length && !previewDue) {
      conversations[id] = c;
      continue;
    }
    changed = true;
    const dueUnread = c.messages.filter((m) => m.expires_at <= serverTime && isUnread(state.me, m, c.read_seq)).length;
    conversations[id] = { ...withMessages(c, alive, previewDue), unread_count: Math.max(0, c.unread_count - dueUnread) };
  }
  return changed ? { ...state, conversations } : state;
}

function setPresence(state: ChatState, userId: string, online: boolean, lastSeenAt: number | null): ChatState {
  const conversations: Record<string, ConversationState> = {};
  for (const [id, c] of Object.entries(state.conversations)) {
    conversations[id] = c.members.some((m) => m.user_id === userId)
      ? { ...c, members: c.members.map((m) => (m.user_id === userId ? { ...m, online, last_seen_at: lastSeenAt } : m)) }
      : c;
  }
  return { ...state, conversations };
}

// --- small helpers ------------------------------------------------------------------------

function stripType(frame: Extract<ServerFrame, { type: "message" }>): Message {
  const { type: _type, ...message } = frame;
  return message;
}

function insertBySeq(messages: Message[], incoming: Message[]): Message[] {
  const bySeq = new Map(messages.map((m) => [m.seq, m]));
  for (const message of incoming) bySeq.set(message.seq, message);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** New messages, with the list preview on the newest message known (cleared if it left). */
function withMessages(c: ConversationState, messages: Message[], previewGone: boolean): ConversationState {
  const newest = messages.at(-1) ?? null;
  const preview = previewGone ? null : c.last_message;
  const last = !preview || (newest && newest.seq >= preview.seq) ? newest : preview;
  return { ...c, messages, last_message: last };
}

/** The held cursor moves over every seq now held without a gap after it. */
function advanceHeld(c: ConversationState): ConversationState {
  const seqs = new Set(c.messages.map((m) => m.seq));
  let held = c.held_seq;
  while (seqs.has(held + 1)) held += 1;
  return held === c.held_seq ? c : { ...c, held_seq: held };
}

/** Unread: after my read cursor and not sent by me (invariant 6; expiry is the caller's). */
function isUnread(me: string, m: Message, readSeq: number): boolean {
  return m.sender_id !== me && m.seq > readSeq;
}

function unreadAfter(me: string, c: ConversationState, readSeq: number): number {
  return c.messages.filter((m) => isUnread(me, m, readSeq)).length;
}

function updateConversation(
  state: ChatState,
  id: string,
  change: (c: ConversationState) => ConversationState,
): ChatState {
  const conversation = state.conversations[id];
  return conversation ? putConversation(state, change(conversation)) : state;
}

function putConversation(state: ChatState, conversation: ConversationState): ChatState {
  return { ...state, conversations: { ...state.conversations, [conversation.id]: conversation } };
}

function updateMember(state: ChatState, conversationId: string, userId: string, change: (m: Member) => Member): ChatState {
  return updateConversation(state, conversationId, (c) => ({
    ...c,
    members: c.members.map((m) => (m.user_id === userId ? change(m) : m)),
  }));
}

// --- questions the views ask --------------------------------------------------------------

/** Conversations, the one with the newest activity first. */
export function conversationsByActivity(state: ChatState): ConversationState[] {
  const activity = (c: ConversationState) => c.last_message?.created_at ?? 0;
  return Object.values(state.conversations).sort((a, b) => activity(b) - activity(a) || a.id.localeCompare(b.id));
}

export function othersIn(state: ChatState, c: ConversationState): Member[] {
  return c.members.filter((m) => m.user_id !== state.me);
}

export type Receipt = "sent" | "delivered" | "read";

/** How far one of my messages got: read once every other member's read cursor passed it. */
export function receiptOf(state: ChatState, c: ConversationState, message: Message): Receipt {
  const others = othersIn(state, c);
  if (others.length === 0) return "sent";
  if (others.every((m) => (m.read_seq ?? 0) >= message.seq)) return "read";
  if (others.every((m) => Math.max(m.delivered_seq ?? 0, m.read_seq ?? 0) >= message.seq)) return "delivered";
  return "sent";
}

/** The cursors a `sync` sends: what this device holds of each conversation. */
export function syncCursors(state: ChatState): Record<string, number> {
  return Object.fromEntries(Object.values(state.conversations).map((c) => [c.id, c.held_seq]));
}

export function conversationName(state: ChatState, c: ConversationState): string {
  if (c.title) return c.title;
  const others = othersIn(state, c).map((m) => m.phone);
  return others.length ? others.join(", ") : "Just me";
}
