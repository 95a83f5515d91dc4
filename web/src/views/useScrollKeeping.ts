// How the message list scrolls: it keeps the reader's place itself, the same in every browser.

import { type RefObject, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { Message } from "../protocol";

/** What the list held at the last render. */
interface Seen {
  conversationId: string;
  pendingCount: number;
  count: number;
  oldestSeq: number;
  newestSeq: number;
}

/** Where the reader's eyes are: a message and how far below the top of the view it is. */
interface Anchor {
  seq: string;
  offset: number;
}

interface ScrollKeeping {
  /** Scrolled up more than a screen from the newest messages. */
  readingHistory: boolean;
  /** Messages from others arrived while reading history (the pill shows). */
  unseen: boolean;
  onScroll: () => void;
  toBottom: () => void;
}

/** The list's scrolling rules. At the bottom (within a screen of it), what arrives keeps the
 * view at the bottom; reading history, what arrives shows the pill and the view stays; my own
 * send always goes to the bottom. Whatever changes above the view (an older page, a message
 * expiring) leaves the message at its top where it was. */
export function useScrollKeeping(
  list: RefObject<HTMLOListElement | null>,
  conversationId: string,
  messages: Message[],
  pendingCount: number,
  me: string,
): ScrollKeeping {
  const [readingHistory, setReadingHistory] = useState(false);
  const [unseen, setUnseen] = useState(false);
  const reading = useRef(false);
  const anchor = useRef<Anchor | null>(null);
  const seen = useRef<Seen | null>(null);
  const shown: Seen = {
    conversationId, pendingCount, count: messages.length, oldestSeq: messages[0]?.seq ?? 0, newestSeq: messages.at(-1)?.seq ?? 0,
  };
  const newestMine = messages.at(-1)?.sender_id === me;

  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    const before = seen.current;
    seen.current = shown;
    const arrived = before !== null && shown.newestSeq > before.newestSeq;
    const sentHere = before !== null && shown.pendingCount > before.pendingCount;
    if (before === null || before.conversationId !== conversationId || sentHere || (arrived && !reading.current)) {
      el.scrollTop = el.scrollHeight;
    } else {
      // only when something above may have moved: a touch's momentum is never pulled back
      const above = shown.oldestSeq !== before.oldestSeq || shown.count !== before.count;
      if (above && anchor.current) keep(el, anchor.current);
      if (arrived && !newestMine) setUnseen(true);
    }
    anchor.current = anchorOf(el);
  });

  // the list shrinking (a phone's keyboard opening) keeps the newest messages in sight
  useEffect(() => {
    const el = list.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
      if (reading.current) {
        if (anchor.current) keep(el, anchor.current);
      } else {
        el.scrollTop = el.scrollHeight;
      }
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, [list]);

  const onScroll = useCallback(() => {
    const el = list.current;
    if (!el) return;
    const nowReading = el.scrollHeight - el.scrollTop - el.clientHeight > el.clientHeight;
    reading.current = nowReading;
    setReadingHistory(nowReading);
    if (!nowReading) setUnseen(false);
    anchor.current = anchorOf(el);
  }, [list]);

  const toBottom = useCallback(() => {
    const el = list.current;
    if (el) el.scrollTop = el.scrollHeight;
    setUnseen(false);
  }, [list]);

  return { readingHistory, unseen, onScroll, toBottom };
}

/** The first message at least partly in view. */
function anchorOf(el: HTMLElement): Anchor | null {
  const items = el.querySelectorAll<HTMLElement>("[data-seq]");
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (items[mid].offsetTop + items[mid].offsetHeight <= el.scrollTop) low = mid + 1;
    else high = mid;
  }
  const item = items[low];
  return item ? { seq: item.dataset.seq ?? "", offset: item.offsetTop - el.scrollTop } : null;
}

/** Scrolls so the anchor's message is where it was. */
function keep(el: HTMLElement, anchor: Anchor): void {
  const item = el.querySelector<HTMLElement>(`[data-seq="${anchor.seq}"]`);
  if (!item) return;
  const moved = item.offsetTop - el.scrollTop - anchor.offset;
  if (moved !== 0) el.scrollTop += moved;
}
