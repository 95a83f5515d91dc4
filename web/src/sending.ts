// Keeping the sender's order (PROTOCOL "Keeping order"). API Gateway runs every frame in its own
// invocation, concurrently: two send frames in flight for one conversation may be stored in
// either order. So a conversation has at most one send frame in flight; what waits meanwhile
// goes next as one batch, in the order written, once every message of that frame is answered.

import { type BatchEntry, MAX_BATCH, MAX_FRAME_BYTES, type SendFrame, type ServerFrame } from "./protocol";
import type { LinkStatus, PendingSend } from "./store";

const encoder = new TextEncoder();

function bytes(text: string): number {
  return encoder.encode(text).length;
}

/** The messages of a conversation that go in its next frame: the oldest waiting ones, in the
 * order written, at most `limit` and no more than fit one frame (the first always goes: alone,
 * a frame too large is refused by the link). Nothing while the oldest must wait (`retry_at`):
 * a later message never overtakes it. Messages refused for good stay out of the way. */
export function nextBatch(outbox: PendingSend[], conversationId: string, now: number, limit: number): PendingSend[] {
  const waiting = outbox.filter((p) => p.conversation_id === conversationId && !p.failed);
  if (waiting.length === 0 || (waiting[0].retry_at ?? 0) > now) return [];
  const batch: PendingSend[] = [];
  let frameBytes = bytes(JSON.stringify(sendFrame(conversationId, [], "send:0000000000")));
  for (const pending of waiting.slice(0, limit)) {
    frameBytes += bytes(JSON.stringify(entryOf(pending))) + 1; // and a comma
    if (batch.length > 0 && frameBytes > MAX_FRAME_BYTES) break;
    batch.push(pending);
  }
  return batch;
}

/** One message goes in the single form (any server takes it), more in the batch form. */
export function sendFrame(conversationId: string, batch: PendingSend[], req: string): SendFrame {
  if (batch.length === 1) {
    const [only] = batch;
    return { action: "send", req, conversation_id: conversationId, client_msg_id: only.client_msg_id, body: only.body };
  }
  return { action: "send", req, conversation_id: conversationId, messages: batch.map(entryOf) };
}

function entryOf(pending: PendingSend): BatchEntry {
  return { client_msg_id: pending.client_msg_id, body: pending.body };
}

/** A send frame on the wire, waiting for an answer to each of its messages. */
export interface FrameInFlight {
  conversationId: string;
  req: string;
  /** Every message of the frame, in the order sent. */
  clientMsgIds: string[];
  /** Those with no `sent` yet. */
  unanswered: Set<string>;
  sentAt: number;
}

/** The one send frame in flight per conversation. */
export class FramesInFlight {
  private readonly byConversation = new Map<string, FrameInFlight>();

  has(conversationId: string): boolean {
    return this.byConversation.has(conversationId);
  }

  start(conversationId: string, req: string, clientMsgIds: string[], now: number): void {
    this.byConversation.set(conversationId, {
      conversationId, req, clientMsgIds, unanswered: new Set(clientMsgIds), sentAt: now,
    });
  }

  /** A `sent` arrived: true when it was the last answer its frame waited for. */
  answer(conversationId: string, clientMsgId: string): boolean {
    const frame = this.byConversation.get(conversationId);
    if (!frame?.unanswered.delete(clientMsgId)) return false;
    if (frame.unanswered.size > 0) return false;
    this.byConversation.delete(conversationId);
    return true;
  }

  /** An `error` answered the frame sent with this `req` (all of it): it is no longer in flight. */
  refused(req: string): FrameInFlight | undefined {
    const frame = [...this.byConversation.values()].find((f) => f.req === req);
    if (frame) this.byConversation.delete(frame.conversationId);
    return frame;
  }

  /** Messages that left the outbox some other way (a sync showed them stored, or the user
   * discarded them) need no answer any more. Returns the conversations freed. */
  settle(outbox: PendingSend[]): string[] {
    const waiting = new Set(outbox.map((p) => p.client_msg_id));
    const freed: string[] = [];
    for (const frame of this.byConversation.values()) {
      for (const id of frame.unanswered) if (!waiting.has(id)) frame.unanswered.delete(id);
      if (frame.unanswered.size === 0) freed.push(frame.conversationId);
    }
    freed.forEach((id) => this.byConversation.delete(id));
    return freed;
  }

  /** A frame unanswered for `timeoutMs` or more: the link that carried it is dead. */
  overdue(now: number, timeoutMs: number): boolean {
    return [...this.byConversation.values()].some((frame) => now - frame.sentAt >= timeoutMs);
  }

  /** The link died: nothing is in flight any more; every unanswered message goes again. */
  clear(): void {
    this.byConversation.clear();
  }
}

/** How many messages the next batch may carry: halved when a batch was rate limited again
 * after waiting as told (it may never fit the limit), and down to one when a server refused a
 * batch as a bad request (an older server without the batch form, or one bad message in it:
 * one by one, each gets its own answer). */
export class BatchSize {
  private limit = MAX_BATCH;

  get current(): number {
    return this.limit;
  }

  rateLimitedAgain(size: number): void {
    this.limit = Math.max(1, Math.min(this.limit, Math.ceil(size / 2)));
  }

  refusedAsBadRequest(): void {
    this.limit = 1;
  }
}

/** How long the messages of a refused send frame wait before they go again; undefined when
 * they were refused for good (`not_found`, `forbidden`, `too_large`...): shown as failed. */
export function retryDelay(error: Extract<ServerFrame, { type: "error" }>, isBatch: boolean): number | undefined {
  switch (error.code) {
    case "rate_limited":
    case "internal":
      return error.retry_after_ms ?? 2_000;
    case "unauthorized": // this socket is not logged in: the link opens another, they go there
      return 0;
    case "bad_request": // a batch: one by one from now on (BatchSize), each gets its own answer
      return isBatch ? 0 : undefined;
    default:
      return undefined;
  }
}

/** Where one pending message stands, for the view. */
export type PendingProgress =
  | { kind: "failed"; code: string }
  | { kind: "waiting_for_link" }
  | { kind: "retry_in"; seconds: number; code: string }
  | { kind: "sending" };

/** Refused for good; waiting for the link; waiting out a refusal (its own, or that of the
 * message before it in its chat: a later one never overtakes); or on its way. */
export function pendingProgress(outbox: PendingSend[], pending: PendingSend, link: LinkStatus, now: number): PendingProgress {
  if (pending.failed) return { kind: "failed", code: pending.failed };
  if (link !== "online") return { kind: "waiting_for_link" };
  const head = outbox.find((p) => p.conversation_id === pending.conversation_id && !p.failed) ?? pending;
  const blocker = (head.retry_at ?? 0) > (pending.retry_at ?? 0) ? head : pending;
  const waitMs = (blocker.retry_at ?? 0) - now;
  if (waitMs > 0) return { kind: "retry_in", seconds: Math.ceil(waitMs / 1000), code: blocker.retry_code ?? "rate_limited" };
  return { kind: "sending" };
}

/** What waits to go, beside the link status: "3 messages waiting" ("sending" while online);
 * empty when nothing does. Messages refused for good say so in their chat, not here. */
export function waitingSummary(outbox: PendingSend[], link: LinkStatus): string {
  const count = outbox.filter((p) => !p.failed).length;
  if (count === 0) return "";
  return `${count} ${count === 1 ? "message" : "messages"} ${link === "online" ? "sending" : "waiting"}`;
}
