// Telling the others that I am typing: a `typing` frame at most every few seconds while the
// text changes, and `active: false` once it is cleared, sent, or left alone. Starts go only on
// an open link and are never queued: a typing hint that arrives late is worse than none. A stop
// the others were owed goes when the link is back, if they would still be showing the start.

import { TYPING_STALE_MS } from "./store";

export interface TypingTiming {
  /** `active: true` again at most this often while the person keeps typing. */
  refreshMs: number;
  /** No keystroke for this long: `active: false`. */
  idleMs: number;
}

/** Receivers drop a hint after 6 s without a refresh: a refresh every 3 s keeps it alive. */
export const TYPING_TIMING: TypingTiming = { refreshMs: 3_000, idleMs: 5_000 };

/** Sends one frame if the link is open; false when it is not (nothing is kept for later). */
export type TypingSend = (conversationId: string, active: boolean) => boolean;

interface Typing {
  sentAt: number;
  idleTimer: ReturnType<typeof setTimeout>;
}

export class TypingSender {
  private readonly typing = new Map<string, Typing>();
  /** Stops that could not go (the link was down), per conversation: when they were due. */
  private readonly owedStops = new Map<string, number>();
  private readonly timing: TypingTiming;

  constructor(private readonly send: TypingSend, timing: Partial<TypingTiming> = {}) {
    this.timing = { ...TYPING_TIMING, ...timing };
  }

  /** The composer's text changed: typing while there is text, stopped when it is empty. */
  changed(conversationId: string, text: string, now: number = Date.now()): void {
    if (!text.trim()) {
      this.stopped(conversationId, now);
      return;
    }
    this.owedStops.delete(conversationId); // typing again: the next start says so
    const held = this.typing.get(conversationId);
    if (held) clearTimeout(held.idleTimer);
    let sentAt = held?.sentAt;
    if (sentAt === undefined || now - sentAt >= this.timing.refreshMs) {
      if (!this.send(conversationId, true)) {
        // the link is down: the others will not hear of this, so there is nothing to stop later
        this.typing.delete(conversationId);
        return;
      }
      sentAt = now;
    }
    const idleTimer = setTimeout(() => this.stopped(conversationId), this.timing.idleMs);
    this.typing.set(conversationId, { sentAt, idleTimer });
  }

  /** Sent, cleared, left alone, or the chat closed: `active: false` if the others were told
   * (now, or once the link is back). */
  stopped(conversationId: string, now: number = Date.now()): void {
    const held = this.typing.get(conversationId);
    if (!held) return;
    clearTimeout(held.idleTimer);
    this.typing.delete(conversationId);
    if (!this.send(conversationId, false)) this.owedStops.set(conversationId, now);
  }

  /** A new link is open: the stops owed while it was down go now, unless the others have
   * already dropped the start as stale. */
  linkOpened(now: number = Date.now()): void {
    for (const [conversationId, dueAt] of this.owedStops) {
      if (now - dueAt < TYPING_STALE_MS) this.send(conversationId, false);
    }
    this.owedStops.clear();
  }
}
