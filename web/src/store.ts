// The client's state and the one function that changes it. Pure: no I/O, no clock of its own
// (every time comes in the action), so the rules below are unit-tested without a server.

import type {
  Block, Conversation, ConversationList, Member, Message, Profile, ServerFrame, SyncEntry,
} from "./protocol";

/** The live link as the user should see it: `online` only while a socket is open and answering. */
export type LinkStatus = "connecting" | "online" | "offline";

/** An inclusive range of seqs, `[from, to]`. */
export type SeqRange = [number, number];

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
  /** The code of the refusal that set `retry_at` (`rate_limited`, `internal`...): what to say. */
  retry_code?: string;
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
  /** Seqs past `held_seq` that arrived from a blocked sender: never shown, but held all the same. */
  hidden_seqs: number[];
  /** Seqs past `held_seq` that `expired` said are deleted: they will never come, so they count as held. */
  gone_ranges: SeqRange[];
  /** Started by someone I share no accepted conversation with, and not accepted yet. */
  request: boolean;
  /** False for a big group: its members' presence is not pushed, so the client reads the list
   * again while the group is shown (ChatClient.showing). */
  presence_pushed: boolean;
  /** Where this device's window starts: from here to `held_seq` it holds every message. */
  loaded_from: number;
  /** The server may still hold messages before `loaded_from`: scrolling back asks for them. */
  has_older: boolean;
}

export interface ChatState {
  me: string;
  /** server time minus local time, from the last `server_time` seen. */
  clock_offset_ms: number;
  conversations: Record<string, ConversationState>;
  outbox: PendingSend[];
  /** `GET /me`; null until it has loaded. */
  profile: Profile | null;
  /** The people I blocked, by user id: their messages are never shown. */
  blocked: Record<string, Block>;
  /** My messages I asked the server to unsend and whose answer is still to be shown. */
  unsends?: Unsend[];
  link: LinkStatus;
  /** How many times a gap in seqs outlived its hold and a `sync` was sent to fill it. */
  gap_syncs: number;
  /** Membership and settings changes seen while this page is open, per conversation (the
   * server keeps none: they are shown among the messages, then forgotten with the page). */
  notices: Record<string, Notice[]>;
  /** Everyone's latest typing hint, per conversation and user id. */
  typing: Record<string, Record<string, TypingHint>>;
}

/** Someone's latest `typing` in a conversation. Frames of one socket are handled
 * concurrently, so a stop can arrive before the start typed just ahead of it: `at` tells. */
export interface TypingHint {
  active: boolean;
  /** When their frame reached the server: a hint older than the one held is ignored. */
  at: number;
  /** Local time the hint is forgotten (PROTOCOL: a start is stale after 6 s). */
  until: number;
}

export type Action =
  | { type: "conversations_loaded"; list: ConversationList; now: number }
  | { type: "conversation_loaded"; conversation: Conversation }
  | { type: "frame"; frame: ServerFrame; now: number }
  /** My own membership or settings change, answered over REST: applied as the frame the others get. */
  | { type: "my_change"; frame: Extract<ServerFrame, { type: "member" | "conversation" }>; now: number }
  | { type: "send_queued"; pending: PendingSend }
  /** The server refused these sends (one frame's worth); with `retry_at` they go again then. */
  | { type: "send_refused"; client_msg_ids: string[]; code: string; retry_at?: number }
  | { type: "send_discarded"; client_msg_id: string }
  /** The user asks for a failed send to go again: same client_msg_id, so never stored twice. */
  | { type: "send_retried"; client_msg_id: string }
  /** I asked the server to unsend one of my messages (`req` matches its answer); dismissed: its refusal was read. */
  | { type: "unsend_sent"; unsend: Unsend }
  | { type: "unsend_dismissed"; req: string }
  | { type: "read_locally"; conversation_id: string; seq: number }
  | { type: "expire_due"; now: number }
  | { type: "conversation_removed"; conversation_id: string }
  | { type: "profile_loaded"; profile: Profile }
  | { type: "blocks_loaded"; blocks: Block[] }
  | { type: "blocked"; block: Block }
  | { type: "unblocked"; user_id: string }
  | { type: "history_loaded"; conversation_id: string; messages: Message[] }
  /** A page read back with `before_seq` (scrolling back); `has_more`: older ones remain. */
  | { type: "older_loaded"; conversation_id: string; before_seq: number; messages: Message[]; has_more: boolean }
  | { type: "link_changed"; link: LinkStatus }
  | { type: "gap_sync_sent" };

export function initialState(me: string, outbox: PendingSend[] = []): ChatState {
  return {
    me, clock_offset_ms: 0, conversations: {}, outbox, profile: null, blocked: {}, link: "connecting", gap_syncs: 0,
    notices: {}, typing: {},
  };
}

export function serverNow(state: ChatState, now: number): number {
  return now + state.clock_offset_ms;
}

export function reduce(state: ChatState, action: Action): ChatState {
  switch (action.type) {
    case "conversations_loaded":
      return loadConversations(state, action.list, action.now);
    case "conversation_loaded":
      return putConversation(state, fromServer(state, action.conversation));
    case "frame":
      return settleUnsends(applyFrame(state, action.frame, action.now), action.frame);
    case "my_change":
      return action.frame.type === "member"
        ? applyMemberFrame(state, action.frame, action.now, "call")
        : applyConversationFrame(state, action.frame, action.now, "call");
    case "send_queued":
      return { ...state, outbox: [...state.outbox, action.pending] };
    case "send_refused": {
      const refused = new Set(action.client_msg_ids);
      return {
        ...state,
        outbox: state.outbox.map((p) =>
          !refused.has(p.client_msg_id)
            ? p
            : action.retry_at !== undefined
              ? { ...p, retry_at: action.retry_at, retry_code: action.code }
              : { ...p, failed: action.code },
        ),
      };
    }
    case "send_discarded":
      return { ...state, outbox: state.outbox.filter((p) => p.client_msg_id !== action.client_msg_id) };
    case "send_retried":
      return retryFailed(state, action.client_msg_id);
    case "unsend_sent":
    case "unsend_dismissed":
      return trackUnsend(state, action);
    case "read_locally":
      return updateConversation(state, action.conversation_id, (c) =>
        action.seq <= c.read_seq ? c : { ...c, read_seq: action.seq, unread_count: unreadAfter(state.me, c, action.seq) },
      );
    case "expire_due":
      return dropStaleTyping(dropDue(state, serverNow(state, action.now)), action.now);
    case "conversation_removed":
      return removeConversation(state, action.conversation_id);
    case "profile_loaded":
      return { ...state, profile: action.profile };
    case "blocks_loaded":
      return hideBlocked({ ...state, blocked: Object.fromEntries(action.blocks.map((b) => [b.user_id, b])) });
    case "blocked": {
      // neither sees the other's presence any more: what was shown is stale from now on
      const blocked = { ...state, blocked: { ...state.blocked, [action.block.user_id]: action.block } };
      return hideBlocked(setPresence(blocked, action.block.user_id, null, null));
    }
    case "unblocked":
      return unblock(state, action.user_id);
    case "history_loaded":
      return addHistory(state, action.conversation_id, action.messages);
    case "older_loaded":
      return addOlder(state, action);
    case "link_changed":
      return action.link === state.link ? state : typingCutOff(unsendsCutOff({ ...state, link: action.link }));
    case "gap_sync_sent":
      return { ...state, gap_syncs: state.gap_syncs + 1 };
  }
}

function applyFrame(state: ChatState, frame: ServerFrame, now: number): ChatState {
  switch (frame.type) {
    case "message":
      return settleOutbox(receiveMessage(stopTyping(state, frame.conversation_id, frame.sender_id), stripType(frame)), [frame]);
    case "sent":
      return confirmSend(state, frame);
    case "receipt":
      if (frame.kind === "read" && !readReceiptsOn(state)) return state; // I see nobody's reads
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
      const stored = frame.conversations.flatMap((entry) => entry.messages);
      return settleOutbox({ ...synced, clock_offset_ms: frame.server_time - now }, stored);
    }
    case "expired":
      return updateConversation(state, frame.conversation_id, (c) => {
        const gone = (seq: number) => seq <= frame.up_to_seq || frame.ranges.some(([from, to]) => seq >= from && seq <= to);
        const kept = withMessages(c, c.messages.filter((m) => !gone(m.seq)), c.last_message !== null && gone(c.last_message.seq));
        // what is deleted will never arrive: the held cursor may move over it
        const goneRanges: SeqRange[] = [...c.gone_ranges, ...frame.ranges, [1, frame.up_to_seq]];
        return advanceHeld({ ...kept, gone_ranges: goneRanges.filter(([from, to]) => from <= to && to > c.held_seq) });
      });
    case "pong":
      return { ...state, clock_offset_ms: frame.server_time - now };
    case "conversation":
      return applyConversationFrame(state, frame, now);
    case "member":
      return applyMemberFrame(state, frame, now);
    case "typing":
      return applyTyping(state, frame, now);
    case "error":
      return state; // errors: the controller matches them to what it asked (by `req`)
    default:
      return state; // a frame type newer than this client
  }
}

function loadConversations(state: ChatState, list: ConversationList, now: number): ChatState {
  const conversations: Record<string, ConversationState> = {};
  for (const conversation of list.conversations) {
    conversations[conversation.id] = fromServer(state, conversation);
  }
  return { ...state, conversations, clock_offset_ms: list.server_time - now };
}

/** How many of the newest messages a device takes of a conversation it holds nothing of. */
export const START_PAGE = 50;

/** Where a device starts a conversation it holds nothing of: at its newest page, not at seq 1.
 * What came before counts as held, for the `sync` cursor and for `ack` alike. Those messages
 * are not missing from the stream (no push of them is on its way for a gap to wait for): the
 * device leaves them on the server, and scrolling back reads them (`before_seq`). `ack` can
 * only say "everything up to seq", so `delivered` moves over them too: they reached a device of
 * mine that shows them on request. The server's unread count covers them (see unreadCount). */
function startCursor(lastSeq: number): number {
  return Math.max(0, lastSeq - START_PAGE);
}

/** The server's view of a conversation, keeping the messages and cursor this device holds. */
function fromServer(state: ChatState, conversation: Conversation): ConversationState {
  const held = state.conversations[conversation.id];
  const { last_message, request, presence_pushed, ...fields } = conversation;
  const start = startCursor(fields.last_seq);
  const base: ConversationState = {
    ...fields,
    members: held ? fields.members.map((m) => keepCursors(m, held.members)) : fields.members,
    request: request === true,
    presence_pushed: presence_pushed !== false,
    messages: [],
    last_message: last_message && !isHidden(state, last_message) ? last_message : null,
    held_seq: held?.held_seq ?? start,
    hidden_seqs: held?.hidden_seqs ?? [],
    gone_ranges: held?.gone_ranges ?? [],
    loaded_from: held?.loaded_from ?? start + 1,
    has_older: held?.has_older ?? start > 0,
  };
  return withMessages(base, held?.messages ?? [], false);
}

/** A list read before a receipt arrived never moves that member's cursors back; a cursor the
 * server now hides (null) stays hidden. */
function keepCursors(member: Member, held: Member[]): Member {
  const before = held.find((m) => m.user_id === member.user_id);
  if (!before) return member;
  const later = (now: number | null, then: number | null) => (now === null ? null : Math.max(now, then ?? 0));
  return {
    ...member,
    read_seq: later(member.read_seq, before.read_seq),
    delivered_seq: later(member.delivered_seq, before.delivered_seq),
  };
}

function removeConversation(state: ChatState, id: string): ChatState {
  if (!state.conversations[id]) return state;
  const { [id]: _gone, ...conversations } = state.conversations;
  const { [id]: _notices, ...notices } = state.notices;
  const { [id]: _typing, ...typing } = state.typing;
  return { ...state, conversations, notices, typing, outbox: state.outbox.filter((p) => p.conversation_id !== id) };
}

function receiveMessage(state: ChatState, message: Message): ChatState {
  const conversation = state.conversations[message.conversation_id];
  if (!conversation) return state; // unknown conversation: the controller reloads the list
  if (conversation.messages.some((m) => m.seq === message.seq)) return state;
  if (isHidden(state, message)) {
    // held (the cursor moves over it) but never shown nor counted
    if (message.seq <= conversation.held_seq || conversation.hidden_seqs.includes(message.seq)) return state;
    return putConversation(state, advanceHeld({
      ...conversation,
      hidden_seqs: [...conversation.hidden_seqs, message.seq],
      last_seq: Math.max(conversation.last_seq, message.seq),
    }));
  }
  const counts = isUnread(state.me, message, conversation.read_seq);
  const merged = withMessages(conversation, insertBySeq(conversation.messages, [message]), false);
  return putConversation(state, advanceHeld({
    ...merged,
    last_seq: Math.max(conversation.last_seq, message.seq),
    unread_count: conversation.unread_count + (counts ? 1 : 0),
  }));
}

/** A message of mine that arrives stored (by sync, or pushed from another device) settles the
 * pending send it came from: its `sent` was lost, and sending it again could only be refused
 * (a block since) or answered as a duplicate. */
function settleOutbox(state: ChatState, messages: Message[]): ChatState {
  const key = (conversationId: string, clientMsgId: string) => `${conversationId} ${clientMsgId}`;
  const stored = new Set(messages.filter((m) => m.sender_id === state.me).map((m) => key(m.conversation_id, m.client_msg_id)));
  if (!state.outbox.some((p) => stored.has(key(p.conversation_id, p.client_msg_id)))) return state;
  return { ...state, outbox: state.outbox.filter((p) => !stored.has(key(p.conversation_id, p.client_msg_id))) };
}

/** A failed send waits again, in its place: the outbox keeps the order written. */
function retryFailed(state: ChatState, clientMsgId: string): ChatState {
  if (!state.outbox.some((p) => p.client_msg_id === clientMsgId && p.failed)) return state;
  const outbox = state.outbox.map((p) => {
    if (p.client_msg_id !== clientMsgId) return p;
    const { failed: _failed, retry_at: _at, retry_code: _code, ...waiting } = p;
    return waiting;
  });
  return { ...state, outbox };
}

function confirmSend(state: ChatState, sent: Extract<ServerFrame, { type: "sent" }>): ChatState {
  const pending = state.outbox.find((p) => p.client_msg_id === sent.client_msg_id);
  // sending in a request accepts it
  const accepted = updateConversation(state, sent.conversation_id, (c) => (c.request ? { ...c, request: false } : c));
  const rest = { ...accepted, outbox: accepted.outbox.filter((p) => p !== pending) };
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
    const shown = entry.messages.filter((m) => !isHidden(state, m));
    const merged = withMessages(c, insertBySeq(kept, shown), false);
    // a blocked sender's messages are held all the same: the cursor moves over them; and what
    // came before first_seq can never arrive, so it counts as held
    const newestInPage = entry.messages.at(-1)?.seq ?? c.held_seq;
    const heldNow = entry.has_more ? Math.max(newestInPage, entry.first_seq - 1) : entry.last_seq;
    return advanceHeld({
      ...merged,
      last_seq: Math.max(c.last_seq, entry.last_seq),
      read_seq: Math.max(c.read_seq, entry.read_seq),
      unread_count: entry.unread_count,
      held_seq: Math.max(c.held_seq, heldNow),
      has_older: c.has_older && entry.first_seq < c.loaded_from,
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

/** Drops every message (and list preview) of the people I blocked. */
function hideBlocked(state: ChatState): ChatState {
  let changed = false;
  const conversations: Record<string, ConversationState> = {};
  for (const [id, c] of Object.entries(state.conversations)) {
    const kept = c.messages.filter((m) => !isHidden(state, m));
    const previewGone = c.last_message !== null && isHidden(state, c.last_message);
    if (kept.length === c.messages.length && !previewGone) {
      conversations[id] = c;
      continue;
    }
    changed = true;
    conversations[id] = withMessages(c, kept, previewGone);
  }
  return changed ? { ...state, conversations } : state;
}

function unblock(state: ChatState, userId: string): ChatState {
  if (!state.blocked[userId]) return state;
  const { [userId]: _gone, ...blocked } = state.blocked;
  return { ...state, blocked };
}

/** Messages read back with `GET .../messages`: shown beside what is held; the cursor moves
 * only over what leaves no gap, as for a push. */
function addHistory(state: ChatState, conversationId: string, messages: Message[]): ChatState {
  return updateConversation(state, conversationId, (c) => {
    const shown = messages.filter((m) => !isHidden(state, m));
    return advanceHeld(withMessages(c, insertBySeq(c.messages, shown), false));
  });
}

/** An older page (`before_seq` = where the window started) joins the window below it, which
 * then starts at the page's oldest message, or at the very start once nothing older remains.
 * The window's start, not the oldest message shown, is what the next page asks before: a page
 * of nothing but hidden messages still moves it. A reply to a window that has moved since is
 * dropped: what it brings is held already, or would leave a hole. */
function addOlder(state: ChatState, page: Extract<Action, { type: "older_loaded" }>): ChatState {
  const c = state.conversations[page.conversation_id];
  if (!c || page.before_seq !== c.loaded_from) return state;
  const oldest = page.messages[0]?.seq;
  const more = page.has_more && oldest !== undefined;
  const shown = page.messages.filter((m) => !isHidden(state, m));
  return putConversation(state, {
    ...withMessages(c, insertBySeq(c.messages, shown), false), loaded_from: more ? oldest : 1, has_older: more,
  });
}

function setPresence(state: ChatState, userId: string, online: boolean | null, lastSeenAt: number | null): ChatState {
  const conversations: Record<string, ConversationState> = {};
  for (const [id, c] of Object.entries(state.conversations)) {
    conversations[id] = c.members.some((m) => m.user_id === userId)
      ? { ...c, members: c.members.map((m) => (m.user_id === userId ? { ...m, online, last_seen_at: lastSeenAt } : m)) }
      : c;
  }
  return { ...state, conversations };
}

// --- unsend: my messages being taken back ------------------------------------------------

/** An unsend on its way: the message shows "Unsending…" until `expired` (reason "unsent")
 * drops it, or an `error` frame with this `req` says why not (`refused`: its code). */
export interface Unsend {
  req: string;
  conversation_id: string;
  seq: number;
  refused?: string;
}

/** The link went down before this code came: the server may or may not have unsent it. */
export const UNSEND_CUT_OFF = "offline";

function trackUnsend(state: ChatState, action: Extract<Action, { type: "unsend_sent" | "unsend_dismissed" }>): ChatState {
  const unsends = state.unsends ?? [];
  if (action.type === "unsend_dismissed") return { ...state, unsends: unsends.filter((u) => u.req !== action.req) };
  const { conversation_id, seq } = action.unsend;
  const others = unsends.filter((u) => u.conversation_id !== conversation_id || u.seq !== seq);
  return { ...state, unsends: [...others, action.unsend] };
}

/** After a frame: an unsend whose message is gone (its `expired` came) is done; an `error`
 * answering one says why it was refused. */
function settleUnsends(state: ChatState, frame: ServerFrame): ChatState {
  const unsends = state.unsends;
  if (!unsends?.length) return state;
  const held = (u: Unsend) => state.conversations[u.conversation_id]?.messages.some((m) => m.seq === u.seq) === true;
  const refused = (u: Unsend) => frame.type === "error" && frame.req === u.req;
  const next = unsends.filter(held).map((u) => (refused(u) && frame.type === "error" ? { ...u, refused: frame.code } : u));
  const same = next.length === unsends.length && next.every((u, i) => u === unsends[i]);
  return same ? state : { ...state, unsends: next };
}

/** The link dropped: an unsend still unanswered will never be answered on it. */
function unsendsCutOff(state: ChatState): ChatState {
  if (state.link === "online" || !state.unsends?.some((u) => !u.refused)) return state;
  return { ...state, unsends: state.unsends.map((u) => (u.refused ? u : { ...u, refused: UNSEND_CUT_OFF })) };
}

/** The unsend of this message of mine, if one is on its way or was refused. */
export function unsendOf(state: ChatState, conversationId: string, seq: number): Unsend | undefined {
  return state.unsends?.find((u) => u.conversation_id === conversationId && u.seq === seq);
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

/** The held cursor moves over every seq now held (shown, hidden, or deleted for good) without
 * a gap after it: it is what `ack` and `sync` report, so it never passes a seq still to come. */
function advanceHeld(c: ConversationState): ConversationState {
  const seqs = new Set([...c.messages.map((m) => m.seq), ...c.hidden_seqs]);
  let held = c.held_seq;
  for (;;) {
    if (seqs.has(held + 1)) {
      held += 1;
      continue;
    }
    const gone = c.gone_ranges.find(([from, to]) => from <= held + 1 && to > held);
    if (!gone) break;
    held = gone[1];
  }
  if (held === c.held_seq) return c;
  return {
    ...c,
    held_seq: held,
    hidden_seqs: c.hidden_seqs.filter((seq) => seq > held),
    gone_ranges: c.gone_ranges.filter(([, to]) => to > held),
  };
}

/** A message from someone I blocked: never shown, never counted. */
function isHidden(state: ChatState, m: Message): boolean {
  return m.sender_id !== state.me && m.sender_id in state.blocked;
}

function readReceiptsOn(state: ChatState): boolean {
  return state.profile?.settings.read_receipts !== false;
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

/** How far one of my messages got: read once every other member's read cursor passed it
 * (never "read" while my own read receipts are off: then I see nobody's). */
export function receiptOf(state: ChatState, c: ConversationState, message: Message): Receipt {
  const others = othersIn(state, c);
  if (others.length === 0) return "sent";
  if (readReceiptsOn(state) && others.every((m) => (m.read_seq ?? 0) >= message.seq)) return "read";
  if (others.every((m) => Math.max(m.delivered_seq ?? 0, m.read_seq ?? 0) >= message.seq)) return "delivered";
  return "sent";
}

/** Scrolling back may ask for the page before the window: older ones remain, and the window
 * itself has come (a page asked for before it would show above nothing, out of place). */
export function canLoadOlder(c: ConversationState): boolean {
  return c.has_older && c.held_seq >= c.last_seq;
}

/** How far one of my messages got with each other member: read first, then delivered, then
 * sent; as `receiptOf`, never "read" while my own read receipts are off. */
export function readersOf(state: ChatState, c: ConversationState, message: Message): Reader[] {
  const readsShown = readReceiptsOn(state);
  const rank: Record<Receipt, number> = { read: 0, delivered: 1, sent: 2 };
  return othersIn(state, c)
    .map((member) => ({ member, receipt: memberReceipt(member, message.seq, readsShown) }))
    .sort((a, b) => rank[a.receipt] - rank[b.receipt] || memberName(a.member).localeCompare(memberName(b.member)));
}

export interface Reader {
  member: Member;
  receipt: Receipt;
}

function memberReceipt(m: Member, seq: number, readsShown: boolean): Receipt {
  if (readsShown && (m.read_seq ?? 0) >= seq) return "read";
  if (Math.max(m.delivered_seq ?? 0, m.read_seq ?? 0) >= seq) return "delivered";
  return "sent";
}

/** A message past a seq this device does not hold yet: something is missing in between. */
export function hasGap(c: ConversationState): boolean {
  const newest = Math.max(c.messages.at(-1)?.seq ?? 0, ...c.hidden_seqs);
  return newest > c.held_seq;
}

/** The cursors a `sync` sends: what this device holds of each conversation. */
export function syncCursors(state: ChatState): Record<string, number> {
  return Object.fromEntries(Object.values(state.conversations).map((c) => [c.id, c.held_seq]));
}

export function conversationName(state: ChatState, c: ConversationState): string {
  if (c.title) return c.title;
  if (peerDeleted(state, c)) return DELETED_ACCOUNT;
  const others = othersIn(state, c).map(memberName);
  return others.length ? others.join(", ") : "Just me";
}

/** A person's name as shown: their display name where they set one (and I may see it), else the phone. */
export function memberName(person: { phone: string; display_name: string | null }): string {
  return person.display_name?.trim() || person.phone;
}

/** The unread count shown: the server's, but once this device holds everything, never more
 * than what it holds unread: a blocked sender's messages count for nothing. Unread messages
 * before the window are not held here: then only the server's count knows them. */
export function unreadCount(state: ChatState, c: ConversationState): number {
  if (c.held_seq < c.last_seq || unreadBeforeWindow(c)) return c.unread_count;
  return Math.min(c.unread_count, unreadAfter(state.me, c, c.read_seq));
}

function unreadBeforeWindow(c: ConversationState): boolean {
  return c.has_older && c.read_seq + 1 < c.loaded_from;
}

export function totalUnread(state: ChatState): number {
  return Object.values(state.conversations).reduce((sum, c) => sum + unreadCount(state, c), 0);
}

/** The other person in a direct conversation (undefined in a group or with nobody else). */
export function peerOf(state: ChatState, c: ConversationState): Member | undefined {
  return c.kind === "direct" ? othersIn(state, c)[0] : undefined;
}

/** The people I blocked, most recent first. */
export function blockList(state: ChatState): Block[] {
  return Object.values(state.blocked).sort((a, b) => b.blocked_at - a.blocked_at);
}

// --- members, notices and typing (issue 22) -----------------------------------------------

export const DELETED_ACCOUNT = "Deleted account";
/** A `typing` not refreshed for this long is stale (PROTOCOL: 6 s on clients). */
export const TYPING_STALE_MS = 6_000;
/** Notices kept per conversation: the newest ones; older ones are forgotten. */
const NOTICES_KEPT = 50;
/** The same change told twice (my own call's answer, then its frame) within this is one notice. */
const SAME_NOTICE_MS = 10_000;

/** What a notice says happened; its words are made when shown, with the names known then. */
export type NoticeChange =
  | { kind: "member"; change: "added" | "removed" | "left" | "role"; user_id: string; role: string | null }
  | { kind: "ttl"; ttl_seconds: number }
  | { kind: "title"; title: string | null };

/** A line in the chat that is not a message: who joined, left, was made admin, a new timer. */
export interface Notice {
  conversation_id: string;
  /** Who made the change. */
  by: string;
  what: NoticeChange;
  /** Local time it arrived. */
  at: number;
  /** The newest seq of the conversation then: the notice is shown after that message. */
  after_seq: number;
  /** Names of the people it mentions as they were then (someone removed is no member any more). */
  names: Record<string, string>;
  /** From my own call's answer or from a frame: the other telling of the same change is one notice. */
  source: NoticeSource;
  /** The other telling has come (it is not counted again). */
  matched: boolean;
}

export type NoticeSource = "call" | "frame";

/** A direct chat whose other person is gone (their account was deleted): only I remain. */
export function peerDeleted(state: ChatState, c: ConversationState): boolean {
  return c.kind === "direct" && othersIn(state, c).length === 0 && c.members.some((m) => m.user_id === state.me);
}

/** The member my own change applied to, told as the server would tell the others. */
export function memberChanged(
  conversationId: string, userId: string, change: "added" | "removed" | "left" | "role", by: string, role?: string,
): Extract<ServerFrame, { type: "member" }> {
  return { type: "member", conversation_id: conversationId, user_id: userId, change, by, ...(role ? { role } : {}) };
}

function applyMemberFrame(
  state: ChatState, frame: Extract<ServerFrame, { type: "member" }>, now: number, source: NoticeSource = "frame",
): ChatState {
  const c = state.conversations[frame.conversation_id];
  if (!c) return state; // a conversation new to me: the controller reloads the list
  const gone = frame.change === "removed" || frame.change === "left";
  if (gone && frame.user_id === state.me) return removeConversation(state, frame.conversation_id);
  const what: NoticeChange = { kind: "member", change: frame.change, user_id: frame.user_id, role: frame.role ?? null };
  const noticed = addNotice(state, c, frame.by, what, now, [frame.user_id, frame.by], source);
  if (gone) {
    const typing = stopTyping(noticed, c.id, frame.user_id);
    return updateConversation(typing, c.id, (held) => ({
      ...held, members: held.members.filter((m) => m.user_id !== frame.user_id),
    }));
  }
  if (frame.change !== "role" || !frame.role) return noticed; // who joined: the controller reloads
  const role = frame.role as Member["role"];
  return updateMember(noticed, c.id, frame.user_id, (m) => ({ ...m, role }));
}

function applyConversationFrame(
  state: ChatState, frame: Extract<ServerFrame, { type: "conversation" }>, now: number, source: NoticeSource = "frame",
): ChatState {
  const before = state.conversations[frame.conversation.id];
  const after = putConversation(state, fromServer(state, frame.conversation));
  if (!before || frame.change !== "updated") return after;
  const c = after.conversations[frame.conversation.id];
  let noticed = after;
  if (c.ttl_seconds !== before.ttl_seconds) {
    noticed = addNotice(noticed, c, frame.by, { kind: "ttl", ttl_seconds: c.ttl_seconds }, now, [frame.by], source);
  }
  if ((c.title ?? null) !== (before.title ?? null)) {
    noticed = addNotice(noticed, c, frame.by, { kind: "title", title: c.title }, now, [frame.by], source);
  }
  return noticed;
}

function addNotice(
  state: ChatState, c: ConversationState, by: string, what: NoticeChange, now: number, mentioned: string[],
  source: NoticeSource,
): ChatState {
  const held = state.notices[c.id] ?? [];
  // my call's answer and the frame about it (either may come first) are one change
  const twin = held.findIndex((n) => n.source !== source && !n.matched && n.by === by && now - n.at < SAME_NOTICE_MS
    && JSON.stringify(n.what) === JSON.stringify(what));
  if (twin >= 0) {
    const notices = held.map((n, index) => (index === twin ? { ...n, matched: true } : n));
    return { ...state, notices: { ...state.notices, [c.id]: notices } };
  }
  const names: Record<string, string> = {};
  for (const id of mentioned) {
    const member = c.members.find((m) => m.user_id === id);
    if (member) names[id] = memberName(member);
  }
  const notice: Notice = { conversation_id: c.id, by, what, at: now, after_seq: c.last_seq, names, source, matched: false };
  return { ...state, notices: { ...state.notices, [c.id]: [...held, notice].slice(-NOTICES_KEPT) } };
}

function applyTyping(state: ChatState, frame: Extract<ServerFrame, { type: "typing" }>, now: number): ChatState {
  if (frame.user_id === state.me || frame.user_id in state.blocked) return state;
  if (!state.conversations[frame.conversation_id]) return state;
  const held = state.typing[frame.conversation_id]?.[frame.user_id];
  if (held && overtaken(held, frame.active, frame.at)) return state;
  return setTyping(state, frame.conversation_id, frame.user_id, { active: frame.active, at: frame.at, until: now + TYPING_STALE_MS });
}

/** A hint that reached the server before the one held (a start and a stop of the same
 * instant: the stop is the newer). */
function overtaken(held: TypingHint, active: boolean, at: number): boolean {
  return at < held.at || (at === held.at && active && !held.active);
}

/** Their message arrived, or they left: not typing, and a start older than that stays out. */
function stopTyping(state: ChatState, conversationId: string, userId: string): ChatState {
  const held = state.typing[conversationId]?.[userId];
  if (!held?.active) return state;
  return setTyping(state, conversationId, userId, { ...held, active: false });
}

function setTyping(state: ChatState, conversationId: string, userId: string, hint: TypingHint): ChatState {
  const typing = { ...state.typing[conversationId], [userId]: hint };
  return { ...state, typing: { ...state.typing, [conversationId]: typing } };
}

/** The link dropped: a stop sent meanwhile never comes, so the hints shown go now rather than
 * when stale. Whoever is still typing says so again at their next refresh (every 3 s while they type). */
function typingCutOff(state: ChatState): ChatState {
  if (state.link === "online" || Object.keys(state.typing).length === 0) return state;
  return { ...state, typing: {} };
}

/** Hints nobody refreshed in time are forgotten (the views also hide a start the moment it
 * is due). */
function dropStaleTyping(state: ChatState, now: number): ChatState {
  let changed = false;
  const typing: Record<string, Record<string, TypingHint>> = {};
  for (const [id, people] of Object.entries(state.typing)) {
    const fresh = Object.entries(people).filter(([, hint]) => hint.until > now);
    changed ||= fresh.length !== Object.keys(people).length;
    if (fresh.length) typing[id] = Object.fromEntries(fresh);
  }
  return changed ? { ...state, typing } : state;
}

/** Who is typing in a conversation now, by name (never me, never someone blocked). */
export function typingNames(state: ChatState, c: ConversationState, now: number): string[] {
  const people = state.typing[c.id] ?? {};
  return Object.entries(people)
    .filter(([id, hint]) => hint.active && hint.until > now && id !== state.me && !(id in state.blocked))
    .map(([id]) => {
      const member = c.members.find((m) => m.user_id === id);
      return member ? memberName(member) : "Someone";
    })
    .sort((a, b) => a.localeCompare(b));
}

/** "Bob is typing…", "Bob and Alice are typing…", "3 people are typing…", or "" for nobody. */
export function typingLine(names: string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

/** The notices of a conversation, oldest first. */
export function noticesOf(state: ChatState, c: ConversationState): Notice[] {
  return state.notices[c.id] ?? [];
}

/** A notice in words, e.g. "Alice added Bob", "You made Bob an admin", "Alice is now the owner". */
export function noticeText(state: ChatState, c: ConversationState, n: Notice): string {
  const name = (id: string, subject: boolean) => {
    if (id === state.me) return subject ? "You" : "you";
    const member = c.members.find((m) => m.user_id === id);
    return member ? memberName(member) : n.names[id] ?? (subject ? "Someone" : "someone");
  };
  const by = name(n.by, true);
  const what = n.what;
  switch (what.kind) {
    case "ttl":
      return `${by} set messages to expire after ${ttlLabel(what.ttl_seconds)}`;
    case "title":
      return what.title ? `${by} renamed the group to ${what.title}` : `${by} removed the group's name`;
    case "member": {
      const who = name(what.user_id, false);
      switch (what.change) {
        case "added":
          return what.user_id === n.by ? `${name(what.user_id, true)} joined` : `${by} added ${who}`;
        case "left":
          return `${name(what.user_id, true)} left`;
        case "removed":
          return what.user_id === n.by ? `${name(what.user_id, true)} left` : `${by} removed ${who}`;
        case "role":
          if (what.role === "owner") return `${name(what.user_id, true)} ${what.user_id === state.me ? "are" : "is"} now the owner`;
          return what.role === "admin" ? `${by} made ${who} an admin` : `${by} made ${who} a member`;
      }
    }
  }
  return "";
}

/** How long messages live, as the TTL picker says it. */
export function ttlLabel(seconds: number): string {
  const units: [number, string][] = [[7 * 86400, "week"], [86400, "day"], [3600, "hour"], [60, "minute"]];
  const [size, unit] = units.find(([size]) => seconds >= size && seconds % size === 0) ?? [1, "second"];
  const count = seconds / size;
  return `${count} ${unit}${count === 1 ? "" : "s"}`;
}

/** A message or a notice, in the order they happened: a notice after the message it followed. */
export type TimelineItem = { kind: "message"; message: Message } | { kind: "notice"; notice: Notice };

/** Messages (ascending seq) and notices merged: each notice after every message with a seq up to
 * its `after_seq`, and before later ones; notices keep their own order. */
export function timeline(messages: Message[], notices: Notice[]): TimelineItem[] {
  const items: TimelineItem[] = [];
  let next = 0;
  for (const message of messages) {
    while (next < notices.length && notices[next].after_seq < message.seq) {
      items.push({ kind: "notice", notice: notices[next++] });
    }
    items.push({ kind: "message", message });
  }
  while (next < notices.length) items.push({ kind: "notice", notice: notices[next++] });
  return items;
}
