import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient } from "../src/client";
import { dayKey, dayLabel, startsNewDay } from "../src/days";
import { linkSegments, webAddress } from "../src/links";
import type { Conversation, Member, Message, ServerFrame } from "../src/protocol";
import {
  type ChatState, START_PAGE, initialState, readersOf, receiptOf, reduce, syncCursors, unreadCount,
} from "../src/store";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const PEER = "u-peer";
const CAROL = "u-carol";
const DAN = "u-dan";
const NOW = 1_800_000_000_000;

// --- days ------------------------------------------------------------------------------------

describe("day separators, in local time", () => {
  // local times, so the answers hold in whatever time zone the tests run
  const now = new Date(2026, 10, 30, 0, 5).getTime(); // Mon 30 Nov 2026, 00:05

  it("a message just after midnight is Today, one just before it Yesterday", () => {
    expect(dayLabel(new Date(2026, 10, 30, 0, 1).getTime(), now)).toBe("Today");
    expect(dayLabel(new Date(2026, 10, 29, 23, 59).getTime(), now)).toBe("Yesterday");
  });

  it("an older day this year shows its weekday and date; another year adds the year", () => {
    expect(dayLabel(new Date(2026, 10, 23, 12).getTime(), now, "en-GB")).toBe("Mon 23 Nov");
    expect(dayLabel(new Date(2025, 10, 23, 12).getTime(), now, "en-GB")).toBe("Sun, 23 Nov 2025");
  });

  it("Yesterday crosses a month and a year", () => {
    const newYear = new Date(2027, 0, 1, 9).getTime();
    expect(dayLabel(new Date(2026, 11, 31, 22).getTime(), newYear)).toBe("Yesterday");
    expect(dayLabel(new Date(2026, 11, 30, 22).getTime(), newYear, "en-GB")).toBe("Wed, 30 Dec 2026");
  });

  it("a separator goes before the first message and wherever the local day changes", () => {
    const evening = new Date(2026, 10, 29, 23, 59).getTime();
    const morning = new Date(2026, 10, 30, 0, 1).getTime();
    expect(startsNewDay(evening, undefined)).toBe(true);
    expect(startsNewDay(morning, evening)).toBe(true);
    expect(startsNewDay(morning + 60_000, morning)).toBe(false);
    expect(dayKey(morning)).toBe("2026-11-30");
  });
});

// --- links -----------------------------------------------------------------------------------

describe("links: only http(s), as segments", () => {
  it("an https address in a sentence becomes a link, the words around it stay text", () => {
    expect(linkSegments("see https://example.com/a?b=1#c now")).toEqual([
      { kind: "text", text: "see " },
      { kind: "link", text: "https://example.com/a?b=1#c", href: "https://example.com/a?b=1#c" },
      { kind: "text", text: " now" },
    ]);
  });

  it("javascript:, data: and other schemes stay text, whatever their case", () => {
    for (const body of [
      "javascript:alert(1)",
      "JAVASCRIPT:alert(1)",
      "JavaScript://%0aalert(1)",
      "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox(1)",
      "file:///etc/passwd",
      "ftp://example.com",
    ]) {
      expect(linkSegments(body)).toEqual([{ kind: "text", text: body }]);
    }
  });

  it("a scheme written in capitals is still a web address, and the link goes where it says", () => {
    expect(linkSegments("HTTPS://EXAMPLE.COM/Path")).toEqual([
      { kind: "link", text: "HTTPS://EXAMPLE.COM/Path", href: "https://example.com/Path" },
    ]);
  });

  it("sentence punctuation and unopened brackets after an address are not part of it", () => {
    const links = (body: string) => linkSegments(body).filter((s) => s.kind === "link").map((s) => s.text);
    expect(links("Look: https://example.com.")).toEqual(["https://example.com"]);
    expect(links("is it https://example.com/x?")).toEqual(["https://example.com/x"]);
    expect(links("(see https://example.com/a)")).toEqual(["https://example.com/a"]);
    expect(links("https://en.wikipedia.org/wiki/Foo_(bar), ok")).toEqual(["https://en.wikipedia.org/wiki/Foo_(bar)"]);
    expect(links("'https://example.com/q'!")).toEqual(["https://example.com/q"]);
  });

  it("an address hidden inside another scheme links only to the web address itself", () => {
    const segments = linkSegments("javascript:alert(1)//https://example.com");
    expect(segments.filter((s) => s.kind === "link")).toEqual([
      { kind: "link", text: "https://example.com", href: "https://example.com/" },
    ]);
  });

  it("no host, no link; glued to a word, no link", () => {
    expect(linkSegments("http:// and https://?x")).toEqual([{ kind: "text", text: "http:// and https://?x" }]);
    expect(linkSegments("xhttps://example.com")).toEqual([{ kind: "text", text: "xhttps://example.com" }]);
    expect(webAddress("javascript:alert(1)")).toBeNull();
  });

  it("the segments put back together are the body, unchanged", () => {
    const body = "a https://x.org/1, b http://y.org/(2) c.\nhttps://z.org";
    expect(linkSegments(body).map((s) => s.text).join("")).toBe(body);
  });
});

// --- the store: where a device starts, older pages, unread ---------------------------------------

function member(user_id: string, fields: Partial<Member> = {}): Member {
  return {
    user_id, phone: `+1415555${user_id.length}${user_id.charCodeAt(2)}`, display_name: null, role: "member",
    online: false, last_seen_at: null, read_seq: 0, delivered_seq: 0, ...fields,
  };
}

function conversation(fields: Partial<Conversation> = {}): Conversation {
  return {
    id: "c1", kind: "direct", title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0,
    last_message: null, request: false, members: [member(ME), member(PEER)], ...fields,
  };
}

function message(seq: number, fields: Partial<Message> = {}): Message {
  return {
    conversation_id: "c1", message_id: `m${seq}`, seq, sender_id: PEER, sender_device_id: "d-peer",
    client_msg_id: `client-${seq}`, body: `body ${seq}`, created_at: NOW + seq, expires_at: NOW + 60_000, ...fields,
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function loaded(fields: Partial<Conversation> = {}, state = initialState(ME)): ChatState {
  return reduce(state, {
    type: "conversations_loaded", list: { server_time: NOW, conversations: [conversation(fields)] }, now: NOW,
  });
}

function synced(state: ChatState, fields: object): ChatState {
  const frame = {
    type: "sync", server_time: NOW,
    conversations: [{ conversation_id: "c1", last_seq: 0, read_seq: 0, unread_count: 0, messages: [], has_more: false, first_seq: 1, ...fields }],
  } as ServerFrame;
  return reduce(state, { type: "frame", frame, now: NOW });
}

function older(state: ChatState, before: number, seqs: number[], hasMore: boolean): ChatState {
  return reduce(state, {
    type: "older_loaded", conversation_id: "c1", before_seq: before, messages: seqs.map((s) => message(s)), has_more: hasMore,
  });
}

describe("a device starts a conversation at its newest page", () => {
  it("the sync cursor of a conversation it holds nothing of is one page below its last seq", () => {
    const state = loaded({ last_seq: 120 });
    expect(syncCursors(state)).toEqual({ c1: 120 - START_PAGE });
    expect(state.conversations.c1).toMatchObject({ loaded_from: 120 - START_PAGE + 1, has_older: true });
  });

  it("a short conversation starts at its beginning, with nothing older", () => {
    const state = loaded({ last_seq: 12 });
    expect(syncCursors(state)).toEqual({ c1: 0 });
    expect(state.conversations.c1.has_older).toBe(false);
  });

  it("the newest page held, the held cursor (what ack reports) reaches the last seq", () => {
    const state = synced(loaded({ last_seq: 120 }), { last_seq: 120, messages: range(71, 120).map((s) => message(s)), first_seq: 1 });
    const c = state.conversations.c1;
    expect(c.held_seq).toBe(120);
    expect(c.messages.map((m) => m.seq)).toEqual(range(71, 120));
    expect(c.has_older).toBe(true);
  });

  it("when everything before the window has expired, the sync says there is nothing older", () => {
    const state = synced(loaded({ last_seq: 120 }), { last_seq: 120, messages: range(90, 120).map((s) => message(s)), first_seq: 90 });
    expect(state.conversations.c1.has_older).toBe(false);
  });

  it("a list reloaded later keeps the window and the cursor this device has", () => {
    let state = synced(loaded({ last_seq: 120 }), { last_seq: 120, messages: range(71, 120).map((s) => message(s)) });
    state = older(state, 71, range(21, 70), true);
    state = loaded({ last_seq: 200 }, state);
    expect(state.conversations.c1).toMatchObject({ held_seq: 120, loaded_from: 21, has_older: true });
  });
});

describe("older pages join the window below", () => {
  const start = () => synced(loaded({ last_seq: 120 }), { last_seq: 120, messages: range(71, 120).map((s) => message(s)) });

  it("a page before the window goes in below it, in seq order, and the window starts at its oldest", () => {
    const state = older(start(), 71, range(21, 70), true);
    const c = state.conversations.c1;
    expect(c.messages.map((m) => m.seq)).toEqual(range(21, 120));
    expect(c).toMatchObject({ loaded_from: 21, has_older: true, held_seq: 120 });
    expect(c.last_message?.seq).toBe(120); // the preview stays on the newest
  });

  it("the last page says so: nothing older is asked for again", () => {
    const state = older(older(start(), 71, range(21, 70), true), 21, range(1, 20), false);
    expect(state.conversations.c1.messages).toHaveLength(120);
    expect(state.conversations.c1.has_older).toBe(false);
  });

  it("a reply for a window that has moved since changes nothing", () => {
    const moved = older(start(), 71, range(21, 70), true);
    expect(older(moved, 71, range(21, 70), true)).toBe(moved);
  });

  it("a page of nothing but a blocked sender's messages still moves the window, so the next page asks before it", () => {
    const blocked = reduce(start(), { type: "blocks_loaded", blocks: [{ user_id: PEER, phone: "+1", display_name: null, blocked_at: 1 }] });
    const state = older(blocked, 71, range(21, 70), true);
    expect(state.conversations.c1.loaded_from).toBe(21);
    expect(state.conversations.c1.messages.filter((m) => m.seq < 71)).toEqual([]);
  });
});

describe("the unread count with a window", () => {
  it("unread messages before the window: the server's count is shown, not only what is held", () => {
    const state = synced(loaded({ last_seq: 120 }), {
      last_seq: 120, read_seq: 0, unread_count: 120, messages: range(71, 120).map((s) => message(s)),
    });
    expect(unreadCount(state, state.conversations.c1)).toBe(120);
  });

  it("read up to inside the window: what is held decides, as before", () => {
    const state = synced(loaded({ last_seq: 120, read_seq: 110 }), {
      last_seq: 120, read_seq: 110, unread_count: 10, messages: range(71, 120).map((s) => message(s)),
    });
    expect(unreadCount(state, state.conversations.c1)).toBe(10);
  });

  it("reading the newest message reads everything, the unloaded ones too (the read cursor is cumulative)", () => {
    let state = synced(loaded({ last_seq: 120 }), {
      last_seq: 120, read_seq: 0, unread_count: 120, messages: range(71, 120).map((s) => message(s)),
    });
    state = reduce(state, { type: "read_locally", conversation_id: "c1", seq: 120 });
    expect(unreadCount(state, state.conversations.c1)).toBe(0);
  });
});

// --- who has read my message in a group ---------------------------------------------------------

describe("readersOf: each other member's receipt for my message", () => {
  const group = (members: Member[], readReceipts = true) => {
    const state = loaded({ kind: "group", title: "G", last_seq: 5, members });
    return reduce(state, {
      type: "profile_loaded", profile: { id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: readReceipts } },
    });
  };
  const mine = message(5, { sender_id: ME });

  it("read, delivered and sent per person, read first, by name within each", () => {
    const state = group([
      member(ME),
      member(PEER, { display_name: "Zoe", read_seq: 5, delivered_seq: 5 }),
      member(CAROL, { display_name: "Carol", read_seq: 2, delivered_seq: 5 }),
      member(DAN, { display_name: "Dan", read_seq: 4, delivered_seq: 4 }),
    ]);
    const readers = readersOf(state, state.conversations.c1, mine);
    expect(readers.map((r) => [r.member.display_name, r.receipt])).toEqual([
      ["Zoe", "read"], ["Carol", "delivered"], ["Dan", "sent"],
    ]);
    expect(receiptOf(state, state.conversations.c1, mine)).toBe("sent"); // not everyone has it yet
  });

  it("with my read receipts off nobody shows as read, only as delivered", () => {
    const state = group([member(ME), member(PEER, { read_seq: 5, delivered_seq: 5 })], false);
    expect(readersOf(state, state.conversations.c1, mine).map((r) => r.receipt)).toEqual(["delivered"]);
  });

  it("a member whose cursors are hidden from me (null) shows as sent", () => {
    const state = group([member(ME), member(PEER, { read_seq: null, delivered_seq: null })]);
    expect(readersOf(state, state.conversations.c1, mine).map((r) => r.receipt)).toEqual(["sent"]);
  });
});

// --- the controller: loading older pages ----------------------------------------------------------


describe("client.loadOlder", () => {
  let link: FakeLink;
  let client: ChatClient;
  let asked: string[];
  let answer: (() => void) | null;

  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    client.stop();
    vi.useRealTimers();
  });

  async function started(lastSeq: number, { holdReplies = false, answerSync = true } = {}): Promise<void> {
    asked = [];
    answer = null;
    const stored = range(1, lastSeq).map((s) => message(s));
    const api = {
      conversations: async () => ({ server_time: Date.now(), conversations: [conversation({ last_seq: lastSeq })], next_cursor: null }),
      blocks: async () => [],
      profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
      history: async (_id: string, from: number | { before: number } | { after: number }, limit = 200) => {
        if (typeof from === "number" || !("before" in from)) throw new Error("only pages before are asked for here");
        asked.push(`before ${from.before} limit ${limit}`);
        if (holdReplies) await new Promise<void>((resolve) => (answer = resolve));
        const before = stored.filter((m) => m.seq < from.before);
        return { messages: before.slice(-limit), has_more: before.length > limit };
      },
    } as unknown as ChatApi;
    client = new ChatClient({ api, openLink: (events) => (link = new FakeLink(events)), persistOutbox: () => {} }, ME, []);
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    link.open();
    if (!answerSync) return;
    const window = stored.slice(-START_PAGE);
    link.receive({
      type: "sync", req: "sync", server_time: Date.now(),
      conversations: [{ conversation_id: "c1", last_seq: lastSeq, read_seq: 0, unread_count: 0, messages: window, has_more: false, first_seq: 1 }],
    });
  }

  it("the first sync asks from one page below the last seq, and acks the last seq once the page is held", async () => {
    await started(130);
    const sync = link.sent.find((f) => f.action === "sync");
    expect(sync && "cursors" in sync && sync.cursors).toEqual({ c1: 130 - START_PAGE });
    await vi.advanceTimersByTimeAsync(300);
    expect(link.sent.filter((f) => f.action === "ack")).toEqual([
      expect.objectContaining({ conversation_id: "c1", seq: 130 }),
    ]);
  });

  it("pages come before the window's start until nothing older remains, then nothing is asked", async () => {
    await started(130);
    await client.loadOlder("c1");
    await client.loadOlder("c1");
    await client.loadOlder("c1");
    expect(asked).toEqual([`before ${130 - START_PAGE + 1} limit 50`, `before ${130 - START_PAGE - 49} limit 50`]);
    expect(client.getState().conversations.c1.messages.map((m) => m.seq)).toEqual(range(1, 130));
  });

  it("before the newest page has come, nothing older is asked for (it would show above nothing)", async () => {
    await started(130, { answerSync: false });
    await client.loadOlder("c1");
    expect(asked).toEqual([]);
  });

  it("one page at a time: a second call while one is on its way asks nothing", async () => {
    await started(130, { holdReplies: true });
    const first = client.loadOlder("c1");
    await client.loadOlder("c1");
    expect(asked).toHaveLength(1);
    answer?.();
    await first;
    expect(client.getState().conversations.c1.loaded_from).toBe(31);
  });
});
