// The chat client: owns the state, the socket and the outbox, and turns what the user does
// and what the server says into actions on the store. Views only read state and call methods.

import type { Api } from "./api";
import { DesktopNotifier, type Notifier } from "./notifications";
import { type Challenge, type Conversation, MAX_BODY_BYTES, type ProfileChange, type ServerFrame } from "./protocol";
import { BatchSize, FramesInFlight, nextBatch, retryDelay, sendFrame } from "./sending";
import { saveOutbox } from "./session";
import { FrameTooLarge, type Link, type SocketEvents } from "./socket";
import {
  type Action, type ChatState, type LinkStatus, type PendingSend, canLoadOlder, hasGap, initialState, reduce, serverNow,
  syncCursors,
} from "./store";
import type { GroupApi } from "./api";
import { memberChanged } from "./store";
import { TypingSender } from "./typing";

/** A sync unanswered this long on a socket that stays open is asked again. */
const SYNC_RESEND_AFTER_MS = 8_000;
/** How often the client looks at what waits: sends due again, frames unanswered too long. */
const TICK_MS = 1_000;
/** Acks and reads are cumulative: those within this window go as one frame per conversation,
 * which keeps a busy chat inside the server's per-connection frame limit. */
const CURSOR_DELAY_MS = 250;
const SEND_REQ = "send:";
const SYNC_REQ = "sync";
const CURSOR_REQ = "cursor";
const UNSEND_REQ = "unsend:";
/** A sync that would repeat the last one word for word waits this long (no busy loop). */
const SYNC_STALL_MS = 2_000;
const HISTORY_PAGES = 50;
/** Messages per page when scrolling back. */
const OLDER_PAGE = 50;
/** While a group whose members' presence the server does not push (a big one) is shown, the list
 * is read again this often, so that its members' online dots stay true. */
export const PRESENCE_REFRESH_MS = 30_000;
/** In such a group the server pushes nobody a receipt: an ack only moves the delivered cursor
 * that others read from the list every 30 s. One every 10 s serves them as well, and spares the
 * server most acks of a busy group (an invocation and a write each). */
export const BIG_GROUP_ACK_EVERY_MS = 10_000;

export class SendRefused extends Error {}

/** The account's own REST calls (Settings): the app's Api has them; a test's may not. */
export type AccountApi = Pick<Api, "deleteChallenge" | "deleteAccount" | "exportData">;

export interface ClientTiming {
  /** A message after a gap in seqs waits this long for the missing ones (pushes from
   * concurrent invocations overtake each other) before a `sync` fetches them. */
  gapHoldMs: number;
  /** A send frame unanswered this long means the link is dead: a new link, then it goes again
   * (same client_msg_ids, same order). As short as a ping's answer (socket.ts): the person
   * waits on it. */
  sendTimeoutMs: number;
}

const DEFAULT_TIMING: ClientTiming = { gapHoldMs: 1_000, sendTimeoutMs: 5_000 };

/** The REST calls the chat client makes. */
export type ChatApi = Pick<
  Api,
  | "conversations" | "createConversation" | "updateConversation" | "acceptRequest" | "declineRequest"
  | "profile" | "updateProfile" | "blocks" | "block" | "unblock" | "history"
>;

/** What the chat client works with: the REST API, a way to open the live link, and where the
 * outbox is kept (sessionStorage unless told otherwise). */
export interface ChatClientDeps {
  api: ChatApi & Partial<AccountApi>;
  openLink: (events: SocketEvents) => Link;
  persistOutbox?: (outbox: PendingSend[]) => void;
  timing?: Partial<ClientTiming>;
  /** Desktop notifications (the browser's unless told otherwise). */
  notifier?: Notifier;
}

export class ChatClient {
  private state: ChatState;
  private listeners = new Set<() => void>();
  private readonly socket: Link;
  private readonly persistOutbox: (outbox: PendingSend[]) => void;
  private readonly timing: ClientTiming;
  private syncing = false;
  /** Sends wait for the first sync after a (re)connect: it shows what the last link stored. */
  private syncedSinceOpen = false;
  private linkOpenedBefore = false;
  private syncSentAt = 0;
  private lastSyncCursors = "";
  private listLoadsStarted = 0;
  private listLoadShown = 0;
  private acked = new Map<string, number>();
  private readWanted = new Map<string, number>();
  private readSent = new Map<string, number>();
  private cursorTimer: number | undefined;
  private readonly lastBigGroupAck = new Map<string, number>();
  private bigGroupAckTimer: number | undefined;
  private readonly inFlight = new FramesInFlight();
  private readonly batchSize = new BatchSize();
  private framesSent = 0;
  private readonly gapTimers = new Map<string, number>();
  /** Conversations with an older page on its way: one at a time each. */
  private readonly loadingOlder = new Set<string>();
  private timers: number[] = [];
  /** The conversation on screen, if any (`showing`). */
  private shownId: string | null = null;
  private readonly encoder = new TextEncoder();
  private readonly api: ChatApi & Partial<AccountApi>;
  /** For the settings screen (permission, previews) and the layout (`onOpen`: open that chat). */
  readonly notifications: Notifier;

  constructor(deps: ChatClientDeps, me: string, outbox: PendingSend[]) {
    this.api = deps.api;
    this.notifications = deps.notifier ?? new DesktopNotifier();
    this.state = initialState(me, outbox);
    this.persistOutbox = deps.persistOutbox ?? saveOutbox;
    this.timing = { ...DEFAULT_TIMING, ...deps.timing };
    this.socket = deps.openLink({
      opened: () => this.onOpened(),
      frame: (frame) => this.onFrame(frame),
      status: (status) => this.onLinkStatus(status),
    });
  }

  // --- for React (useSyncExternalStore) ---------------------------------------------------

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getState = (): ChatState => this.state;

  // --- life -------------------------------------------------------------------------------

  start(): void {
    // the list (and who is blocked) first, so the first sync already knows every conversation
    // and never shows what a blocked sender wrote
    const ready = [this.reloadConversations(), this.loadBlocks(), this.loadProfile()];
    void Promise.all(ready).then(() => this.socket.start());
    this.timers.push(
      setInterval(() => this.dispatch({ type: "expire_due", now: Date.now() }), 1_000),
      setInterval(() => this.tick(), TICK_MS),
      setInterval(() => this.refreshPresence(), PRESENCE_REFRESH_MS),
    );
  }

  stop(): void {
    this.socket.stop();
    this.timers.forEach((timer) => clearInterval(timer));
    clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    clearTimeout(this.bigGroupAckTimer);
    this.bigGroupAckTimer = undefined;
    this.timers = [];
    this.gapTimers.forEach((timer) => clearTimeout(timer));
    this.gapTimers.clear();
  }

  // --- what the user does -----------------------------------------------------------------

  /** Queues a message; it goes now if the link is up and nothing of its conversation is in
   * flight, else after what is (with whatever else waits, as one batch in the order written). */
  sendMessage(conversationId: string, body: string): void {
    const text = body.trim();
    if (!text) return;
    if (this.encoder.encode(text).length > MAX_BODY_BYTES) {
      throw new SendRefused("This message is longer than 16 KB.");
    }
    const pending: PendingSend = {
      client_msg_id: crypto.randomUUID(),
      conversation_id: conversationId,
      body: text,
      queued_at: Date.now(),
    };
    this.dispatch({ type: "send_queued", pending });
    this.sendNext(conversationId);
  }

  discardFailed(clientMsgId: string): void {
    this.dispatch({ type: "send_discarded", client_msg_id: clientMsgId });
  }

  /** A message refused for good goes again, with its client_msg_id: if an earlier try was
   * stored after all, the server answers it as a duplicate. */
  retryFailed(clientMsgId: string): void {
    const pending = this.state.outbox.find((p) => p.client_msg_id === clientMsgId);
    if (!pending?.failed) return;
    this.dispatch({ type: "send_retried", client_msg_id: clientMsgId });
    this.sendNext(pending.conversation_id);
  }

  /** The person is typing: a link quiet for a few seconds is asked whether it still works, so
   * the status is true by the time they send. */
  probeLink(): void {
    this.socket.probe();
  }

  /** The user has seen everything this device holds of a conversation. */
  markRead(conversationId: string): void {
    const conversation = this.state.conversations[conversationId];
    const newest = conversation?.messages.at(-1)?.seq ?? 0;
    if (!conversation || newest <= conversation.read_seq) return;
    this.dispatch({ type: "read_locally", conversation_id: conversationId, seq: newest });
    this.readWanted.set(conversationId, newest);
    this.scheduleCursors();
  }

  async createConversation(phones: string[], title?: string, ttlSeconds?: number): Promise<Conversation> {
    const conversation = await this.api.createConversation(phones, title, ttlSeconds);
    this.dispatch({ type: "conversation_loaded", conversation });
    this.requestSync();
    return conversation;
  }

  async updateConversation(id: string, fields: { title?: string; ttl_seconds?: number }): Promise<void> {
    const conversation = await this.api.updateConversation(id, fields);
    // told as the others are told (they get a `conversation` frame): the notice shows here too
    this.dispatch({ type: "my_change", frame: { type: "conversation", conversation, change: "updated", by: this.state.me }, now: Date.now() });
  }

  async acceptRequest(id: string): Promise<void> {
    const conversation = await this.api.acceptRequest(id);
    this.dispatch({ type: "conversation_loaded", conversation });
  }

  /** Leaves a request; with `block`, whoever started it is blocked too. */
  async declineRequest(id: string, block: boolean): Promise<void> {
    await this.api.declineRequest(id, block);
    this.dispatch({ type: "conversation_removed", conversation_id: id });
    if (block) await this.loadBlocks();
  }

  async block(userId: string): Promise<void> {
    const block = await this.api.block(userId);
    this.dispatch({ type: "blocked", block });
  }

  async unblock(userId: string): Promise<void> {
    await this.api.unblock(userId);
    this.dispatch({ type: "unblocked", user_id: userId });
    // their presence, and what they wrote in the conversations we share that has not expired
    const shared = Object.values(this.state.conversations).filter((c) => c.members.some((m) => m.user_id === userId));
    await Promise.all([this.reloadConversations(), ...shared.map((c) => this.loadHistory(c.id))]);
  }

  /** The page before what this device holds of a conversation (the user scrolled back to the
   * top); nothing while one is on its way, before the newest page has come, or when nothing
   * older remains. Throws if it cannot load. */
  async loadOlder(conversationId: string): Promise<void> {
    const conversation = this.state.conversations[conversationId];
    if (!conversation || !canLoadOlder(conversation) || this.loadingOlder.has(conversationId)) return;
    this.loadingOlder.add(conversationId);
    try {
      const before = conversation.loaded_from;
      const { messages, has_more } = await this.api.history(conversationId, { before }, OLDER_PAGE);
      this.dispatch({ type: "older_loaded", conversation_id: conversationId, before_seq: before, messages, has_more });
    } finally {
      this.loadingOlder.delete(conversationId);
    }
  }

  /** The conversation on screen (null: none). A big group's members' presence is not pushed:
   * while one is shown the list is read at once and then every PRESENCE_REFRESH_MS. */
  showing(conversationId: string | null): void {
    if (conversationId === this.shownId) return;
    this.shownId = conversationId;
    this.refreshPresence();
  }

  /** The profile and the block list again (the settings screen, when it opens). */
  async refreshSettings(): Promise<void> {
    await Promise.all([this.loadProfile(), this.loadBlocks()]);
  }

  async updateProfile(change: ProfileChange): Promise<void> {
    const profile = await this.api.updateProfile(change);
    this.dispatch({ type: "profile_loaded", profile });
    // others' read cursors are hidden from me, or shown again, from now on
    if (change.read_receipts !== undefined) await this.reloadConversations();
  }

  // --- unsend, and the account (Settings) --------------------------------------------------

  /** Takes back one of my sent messages, while the link is up: it shows "Unsending…" until
   * the server's `expired` (reason "unsent") drops it everywhere, or an `error` with this
   * `req` says why not. Throws SendRefused, in words, when it cannot even be asked. */
  unsend(conversationId: string, seq: number): void {
    const message = this.state.conversations[conversationId]?.messages.find((m) => m.seq === seq);
    if (!message || message.sender_id !== this.state.me) throw new SendRefused("Only your own sent messages can be unsent.");
    const req = `${UNSEND_REQ}${++this.framesSent}`;
    if (!this.socket.send({ action: "unsend", req, conversation_id: conversationId, seq })) {
      throw new SendRefused("You're offline. A message can be unsent only while connected.");
    }
    this.dispatch({ type: "unsend_sent", unsend: { req, conversation_id: conversationId, seq } });
  }

  /** The person has read why an unsend was refused. */
  dismissUnsend(req: string): void {
    this.dispatch({ type: "unsend_dismissed", req });
  }

  /** Texts a code to my phone: the step before `deleteAccount`. */
  requestAccountDeletion(): Promise<Challenge> {
    return this.accountApi().deleteChallenge();
  }

  /** Deletes my account with the texted code; the API then signs this device out, and the app
   * goes back to the sign-in screen (which stops this client). */
  deleteAccount(challengeId: string, code: string): Promise<void> {
    return this.accountApi().deleteAccount(challengeId, code);
  }

  /** Everything the server stores about me (`GET /me/export`). */
  exportData(): Promise<unknown> {
    return this.accountApi().exportData();
  }

  private accountApi(): AccountApi {
    const { deleteChallenge, deleteAccount, exportData } = this.api;
    if (!deleteChallenge || !deleteAccount || !exportData) throw new Error("this client was made without the account API");
    return this.api as AccountApi;
  }

  // --- group membership and typing (issue 22) ---------------------------------------------

  /** The membership calls: every real Api has them; a test's api may leave them out. */
  private get groupApi(): GroupApi {
    return this.api as GroupApi;
  }

  private readonly typingSender = new TypingSender((conversationId, active) =>
    this.socket.send({ action: "typing", conversation_id: conversationId, active }));

  /** The composer's text changed: the others see that I am typing while there is text. */
  typing(conversationId: string, text: string): void {
    this.typingSender.changed(conversationId, text);
  }

  /** Sent, or the chat closed: the others stop seeing me typing. */
  typingStopped(conversationId: string): void {
    this.typingSender.stopped(conversationId);
  }

  /** Adds people to a group by phone (owner and admins); new members are told in a notice. */
  async addMembers(conversationId: string, phones: string[]): Promise<void> {
    if (!this.groupApi.addMembers) throw new Error("adding members is not available");
    const before = new Set(this.state.conversations[conversationId]?.members.map((m) => m.user_id) ?? []);
    const conversation = await this.groupApi.addMembers(conversationId, phones);
    this.dispatch({ type: "conversation_loaded", conversation });
    for (const member of conversation.members.filter((m) => !before.has(m.user_id))) {
      this.told(memberChanged(conversationId, member.user_id, "added", this.state.me));
    }
  }

  /** Removes someone from a group (admins: plain members; the owner: anyone). */
  async removeMember(conversationId: string, userId: string): Promise<void> {
    if (!this.groupApi.removeMember) throw new Error("removing members is not available");
    await this.groupApi.removeMember(conversationId, userId);
    this.told(memberChanged(conversationId, userId, "removed", this.state.me));
  }

  /** The owner makes someone an admin, or an admin a plain member again. */
  async setMemberRole(conversationId: string, userId: string, role: "admin" | "member"): Promise<void> {
    if (!this.groupApi.setMemberRole) throw new Error("changing roles is not available");
    await this.groupApi.setMemberRole(conversationId, userId, role);
    this.told(memberChanged(conversationId, userId, "role", this.state.me, role));
  }

  /** Leaves a group: it leaves my list at once. */
  async leaveGroup(conversationId: string): Promise<void> {
    if (!this.groupApi.removeMember) throw new Error("leaving is not available");
    this.typingSender.stopped(conversationId);
    await this.groupApi.removeMember(conversationId, this.state.me);
    this.dispatch({ type: "conversation_removed", conversation_id: conversationId });
  }

  /** My own change, applied as the frame the others get (that frame reaching me too is one notice). */
  private told(frame: Extract<ServerFrame, { type: "member" }>): void {
    this.dispatch({ type: "my_change", frame, now: Date.now() });
  }

  // --- what the server says ---------------------------------------------------------------

  private onLinkStatus(status: LinkStatus): void {
    if (status !== "online") this.forgetInFlight();
    this.dispatch({ type: "link_changed", link: status });
  }

  /** The link is gone: whatever was in flight on it goes again, after the next link's sync. */
  private forgetInFlight(): void {
    this.inFlight.clear();
    this.syncedSinceOpen = false;
  }

  private onOpened(): void {
    this.forgetInFlight();
    this.acked.clear(); // cursors never move back, so telling a new socket again is harmless
    this.readSent.clear();
    this.syncing = false;
    this.requestSync();
    this.typingSender.linkOpened();
    // sync brings back missed messages, not missed presence or receipts: after a gap, the list
    if (this.linkOpenedBefore) void this.reloadConversations();
    this.linkOpenedBefore = true;
  }

  private onFrame(frame: ServerFrame): void {
    // presence of someone whose every detail was hidden: they accepted a chat with me, so their
    // name and read cursor are mine to see now too
    const revealed = frame.type === "presence" && this.hiddenFromMe(frame.user_id);
    this.dispatch({ type: "frame", frame, now: Date.now() });
    if (revealed) void this.reloadConversations();
    switch (frame.type) {
      case "message":
        this.notifications.messageArrived(this.state, frame, serverNow(this.state, Date.now()));
        if (!this.state.conversations[frame.conversation_id]) {
          void this.reloadConversations().then(() => this.requestSync());
        } else {
          this.watchForGap(frame.conversation_id);
        }
        break;
      case "sent":
        this.watchForGap(frame.conversation_id);
        if (this.inFlight.answer(frame.conversation_id, frame.client_msg_id)) this.sendNext(frame.conversation_id);
        break;
      case "sync":
        this.syncing = false;
        frame.conversations.forEach((entry) => this.watchForGap(entry.conversation_id));
        if (frame.conversations.some((entry) => !this.state.conversations[entry.conversation_id])) {
          void this.reloadConversations().then(() => this.requestSync());
        } else if (frame.more_conversations || frame.conversations.some((entry) => entry.has_more)) {
          this.continueSync(); // the reply covered only part: again, from the cursors held now
        } else {
          this.syncedSinceOpen = true;
          this.flushOutbox();
        }
        break;
      case "conversation":
        this.requestSync(); // its messages, if any came before this
        break;
      case "member":
        // someone joined or left: the members shown come from the list
        if (frame.user_id !== this.state.me || frame.change === "added") void this.reloadConversations();
        break;
      case "error":
        this.onError(frame);
        break;
    }
    this.scheduleCursors();
  }

  private onError(error: Extract<ServerFrame, { type: "error" }>): void {
    if (error.req?.startsWith(SEND_REQ)) {
      const frame = this.inFlight.refused(error.req);
      if (frame) this.onSendRefused(frame.conversationId, frame.clientMsgIds, error);
    } else if (error.req === CURSOR_REQ && error.code === "rate_limited") {
      // a very busy socket: wait as told, then tell every cursor again (they are cumulative)
      this.acked.clear();
      this.readSent.clear();
      this.scheduleCursors(error.retry_after_ms ?? 1_000);
    } else if (error.req === SYNC_REQ) {
      this.syncing = false;
      // a conversation this device listed is no longer mine: start again from the server's list
      if (error.code === "not_found") void this.reloadConversations().then(() => this.requestSync());
      else setTimeout(() => this.requestSync(), error.retry_after_ms ?? 2_000);
    }
  }

  /** An `error` answers a whole send frame: for a batch, nothing of it was stored. */
  private onSendRefused(conversationId: string, clientMsgIds: string[], error: Extract<ServerFrame, { type: "error" }>): void {
    const isBatch = clientMsgIds.length > 1;
    const refusedBefore = this.state.outbox.some((p) => p.client_msg_id === clientMsgIds[0] && p.retry_at !== undefined);
    if (isBatch && error.code === "rate_limited" && refusedBefore) this.batchSize.rateLimitedAgain(clientMsgIds.length);
    if (isBatch && error.code === "bad_request") this.batchSize.refusedAsBadRequest();
    const waitMs = retryDelay(error, isBatch);
    this.dispatch({
      type: "send_refused",
      client_msg_ids: clientMsgIds,
      code: error.code,
      retry_at: waitMs === undefined ? undefined : Date.now() + waitMs,
    });
    // what comes after a message refused for good goes now; but a socket not logged in is being
    // replaced by the link, and the next one's sync comes first
    if (error.code !== "unauthorized") this.sendNext(conversationId);
  }

  // --- plumbing ---------------------------------------------------------------------------

  /** Every second: a frame unanswered too long means a dead link; else whatever may go now. */
  private tick(): void {
    if (this.inFlight.overdue(Date.now(), this.timing.sendTimeoutMs)) {
      this.forgetInFlight();
      this.socket.reportDead();
      return;
    }
    this.flushOutbox();
  }

  /** A message past a seq not held yet: the pushes in between may still come (concurrent
   * invocations overtake each other), so wait a moment before asking for them. */
  private watchForGap(conversationId: string): void {
    const conversation = this.state.conversations[conversationId];
    if (!conversation || !hasGap(conversation) || this.gapTimers.has(conversationId)) return;
    this.gapTimers.set(conversationId, setTimeout(() => this.fillGap(conversationId), this.timing.gapHoldMs));
  }

  private fillGap(conversationId: string): void {
    this.gapTimers.delete(conversationId);
    const conversation = this.state.conversations[conversationId];
    if (!conversation || !hasGap(conversation)) return; // the missing ones came in time
    // a sync already in flight is not sent again: its reply watches for gaps left over
    if (this.requestSync()) this.dispatch({ type: "gap_sync_sent" });
  }

  /** The list again if the chat on screen is a group whose presence comes only from it. */
  private refreshPresence(): void {
    const shown = this.shownId === null ? undefined : this.state.conversations[this.shownId];
    if (shown && !shown.presence_pushed) void this.reloadConversations();
  }

  private hiddenFromMe(userId: string): boolean {
    return Object.values(this.state.conversations).some((c) =>
      c.members.some((m) => m.user_id === userId && m.online === null && m.last_seen_at === null));
  }

  /** Sends a sync unless one is in flight; true if one went. */
  private requestSync(): boolean {
    // one sync in flight at a time; a reply lost on a socket that stays open frees it after a while
    if (this.syncing && Date.now() - this.syncSentAt < SYNC_RESEND_AFTER_MS) return false;
    const cursors = syncCursors(this.state);
    this.syncing = this.socket.send({ action: "sync", req: SYNC_REQ, cursors });
    this.syncSentAt = Date.now();
    if (this.syncing) this.lastSyncCursors = JSON.stringify(cursors);
    return this.syncing;
  }

  /** The next part of a sync at once; but cursors that did not move would only get the same
   * answer again, so then it waits a little instead of spinning. */
  private continueSync(): void {
    if (JSON.stringify(syncCursors(this.state)) !== this.lastSyncCursors) this.requestSync();
    else setTimeout(() => this.requestSync(), SYNC_STALL_MS);
  }

  private flushOutbox(): void {
    if (!this.socket.isOpen) return;
    if (this.syncing) this.requestSync(); // sends again only if the last one went unanswered
    if (!this.syncedSinceOpen) return;
    this.inFlight.settle(this.state.outbox);
    const conversationIds = new Set(this.state.outbox.map((p) => p.conversation_id));
    conversationIds.forEach((id) => this.sendNext(id));
  }

  /** The next frame of a conversation, if none of its frames is in flight: whatever waits, as
   * one batch in the order written. */
  private sendNext(conversationId: string): void {
    if (!this.socket.isOpen || !this.syncedSinceOpen || this.inFlight.has(conversationId)) return;
    const now = Date.now();
    const batch = nextBatch(this.state.outbox, conversationId, now, this.batchSize.current);
    if (batch.length === 0) return;
    const req = `${SEND_REQ}${++this.framesSent}`;
    try {
      if (!this.socket.send(sendFrame(conversationId, batch, req))) return;
    } catch (error) {
      // a batch always fits (nextBatch sees to it); a single message may not
      if (!(error instanceof FrameTooLarge) || batch.length > 1) throw error;
      this.dispatch({ type: "send_refused", client_msg_ids: [batch[0].client_msg_id], code: "too_large" });
      this.sendNext(conversationId);
      return;
    }
    this.inFlight.start(conversationId, req, batch.map((p) => p.client_msg_id), now);
  }

  private scheduleCursors(delayMs = CURSOR_DELAY_MS): void {
    if (this.cursorTimer !== undefined) {
      if (delayMs <= CURSOR_DELAY_MS) return;
      clearTimeout(this.cursorTimer); // a rate limit pushes the pending batch back
    }
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      this.sendCursors();
    }, delayMs);
  }

  /** One `ack` per conversation whose held cursor moved, one `read` per conversation read
   * further; what cannot go now goes after the next (re)connect. */
  private sendCursors(): void {
    if (!this.socket.isOpen) return;
    const now = Date.now();
    let bigGroupWait = Infinity;
    for (const { id, held_seq, presence_pushed } of Object.values(this.state.conversations)) {
      const ackDue = held_seq > (this.acked.get(id) ?? 0);
      const wait = presence_pushed ? 0 : (this.lastBigGroupAck.get(id) ?? -Infinity) + BIG_GROUP_ACK_EVERY_MS - now;
      if (ackDue && wait > 0) {
        bigGroupWait = Math.min(bigGroupWait, wait);
      } else if (ackDue && this.sendCursor("ack", id, held_seq)) {
        this.acked.set(id, held_seq);
        if (!presence_pushed) this.lastBigGroupAck.set(id, now);
      }
      const read = this.readWanted.get(id) ?? 0;
      if (read > (this.readSent.get(id) ?? 0) && this.sendCursor("read", id, read)) {
        this.readSent.set(id, read);
      }
    }
    if (bigGroupWait < Infinity && this.bigGroupAckTimer === undefined) {
      this.bigGroupAckTimer = setTimeout(() => {
        this.bigGroupAckTimer = undefined;
        this.sendCursors();
      }, bigGroupWait);
    }
  }

  private sendCursor(action: "ack" | "read", conversationId: string, seq: number): boolean {
    return this.socket.send({ action, req: CURSOR_REQ, conversation_id: conversationId, seq });
  }


  /** Every page of the list, then one state change; a load that ends after a newer one is dropped. */
  private async reloadConversations(): Promise<void> {
    const load = ++this.listLoadsStarted;
    try {
      let page = await this.api.conversations();
      const conversations = [...page.conversations];
      const seen = new Set<string>();
      while (page.next_cursor && !seen.has(page.next_cursor)) {
        seen.add(page.next_cursor);
        page = await this.api.conversations(page.next_cursor);
        conversations.push(...page.conversations);
      }
      if (load < this.listLoadShown) return;
      this.listLoadShown = load;
      const list = { server_time: page.server_time, conversations };
      this.dispatch({ type: "conversations_loaded", list, now: Date.now() });
    } catch {
      // offline or signed out: the next sync or the login screen takes over
    }
  }

  /** Every unexpired message of what this device holds of a conversation (from its window's
   * start), page by page (bounded: history is short-lived). */
  private async loadHistory(conversationId: string): Promise<void> {
    let after = (this.state.conversations[conversationId]?.loaded_from ?? 1) - 1;
    try {
      for (let page = 0; page < HISTORY_PAGES; page += 1) {
        const { messages, has_more } = await this.api.history(conversationId, after);
        this.dispatch({ type: "history_loaded", conversation_id: conversationId, messages });
        if (!has_more || messages.length === 0) return;
        after = messages[messages.length - 1].seq;
      }
    } catch {
      // shown on the next reload of this conversation's messages
    }
  }

  private async loadBlocks(): Promise<void> {
    try {
      this.dispatch({ type: "blocks_loaded", blocks: await this.api.blocks() });
    } catch {
      // as for the list: tried again on the next start
    }
  }

  private async loadProfile(): Promise<void> {
    try {
      this.dispatch({ type: "profile_loaded", profile: await this.api.profile() });
    } catch {
      // the settings screen asks again when it opens
    }
  }

  private dispatch(action: Action): void {
    const before = this.state;
    this.state = reduce(this.state, action);
    if (this.state === before) return;
    if (this.state.outbox !== before.outbox) this.persistOutbox(this.state.outbox);
    this.notify();
  }

  private notify(): void {
    this.listeners.forEach((listener) => listener());
  }
}
