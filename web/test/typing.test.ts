// Typing hints: sent at most every 3 s while the text changes, stopped when cleared, sent or
// left alone for 5 s, never on a link that is down; shown until 6 s without a refresh.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient } from "../src/client";
import type { Conversation, Member, ServerFrame } from "../src/protocol";
import { type ChatState, initialState, reduce, typingLine, typingNames } from "../src/store";
import { TypingSender } from "../src/typing";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const NOW = 1_800_000_000_000;

function member(user_id: string, display_name: string): Member {
  return { user_id, phone: "+1", display_name, role: "member", online: true, last_seen_at: null, read_seq: 0, delivered_seq: 0 };
}

function group(): Conversation {
  return {
    id: "g1", kind: "group", title: "Climbers", ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0,
    last_message: null, request: false,
    members: [member(ME, "Me"), member("u-bob", "Bob"), member("u-alice", "Alice"), member("u-carol", "Carol")],
  };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("sending typing hints", () => {
  let sent: string[];
  let linkUp: boolean;
  let typing: TypingSender;

  beforeEach(() => {
    sent = [];
    linkUp = true;
    typing = new TypingSender((id, active) => {
      if (linkUp) sent.push(`${id} ${active}`);
      return linkUp;
    });
  });

  it("the first keystroke says typing; more within 3 s say nothing more; after 3 s it is said again", () => {
    typing.changed("g1", "h", Date.now());
    vi.advanceTimersByTime(1_000);
    typing.changed("g1", "he", Date.now());
    vi.advanceTimersByTime(1_000);
    typing.changed("g1", "hel", Date.now());
    expect(sent).toEqual(["g1 true"]);
    vi.advanceTimersByTime(1_000);
    typing.changed("g1", "hell", Date.now());
    expect(sent).toEqual(["g1 true", "g1 true"]);
  });

  it("clearing the text stops it, once", () => {
    typing.changed("g1", "hi", Date.now());
    typing.changed("g1", "", Date.now());
    typing.changed("g1", "  ", Date.now());
    expect(sent).toEqual(["g1 true", "g1 false"]);
  });

  it("sending stops it", () => {
    typing.changed("g1", "hi", Date.now());
    typing.stopped("g1");
    expect(sent).toEqual(["g1 true", "g1 false"]);
  });

  it("5 s without a keystroke stops it", () => {
    typing.changed("g1", "hi", Date.now());
    vi.advanceTimersByTime(4_999);
    expect(sent).toEqual(["g1 true"]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual(["g1 true", "g1 false"]);
  });

  it("a keystroke puts the 5 s back", () => {
    typing.changed("g1", "hi", Date.now());
    vi.advanceTimersByTime(2_000);
    typing.changed("g1", "hi!", Date.now());
    vi.advanceTimersByTime(4_000);
    expect(sent).toEqual(["g1 true"]);
    vi.advanceTimersByTime(1_000);
    expect(sent).toEqual(["g1 true", "g1 false"]);
  });

  it("a stop owed while the link was down goes when it is back", () => {
    typing.changed("g1", "hi", Date.now());
    linkUp = false;
    typing.changed("g1", "", Date.now());
    vi.advanceTimersByTime(2_000);
    linkUp = true;
    typing.linkOpened(Date.now());
    typing.linkOpened(Date.now()); // owed once
    expect(sent).toEqual(["g1 true", "g1 false"]);
  });

  it("a stop owed for longer than the others show a start is dropped", () => {
    typing.changed("g1", "hi", Date.now());
    linkUp = false;
    typing.stopped("g1", Date.now());
    vi.advanceTimersByTime(6_000);
    linkUp = true;
    typing.linkOpened(Date.now());
    expect(sent).toEqual(["g1 true"]);
  });

  it("typing again while the link is down cancels the owed stop", () => {
    typing.changed("g1", "hi", Date.now());
    linkUp = false;
    typing.changed("g1", "", Date.now());
    typing.changed("g1", "hi again", Date.now());
    linkUp = true;
    typing.linkOpened(Date.now());
    expect(sent).toEqual(["g1 true"]);
  });

  it("nothing goes while the link is down, and nothing is kept for later", () => {
    linkUp = false;
    typing.changed("g1", "hi", Date.now());
    linkUp = true;
    vi.advanceTimersByTime(10_000);
    typing.stopped("g1");
    expect(sent).toEqual([]);
  });
});

describe("the client sends typing on the link only", () => {
  let link: FakeLink;
  let client: ChatClient;

  beforeEach(async () => {
    const api = {
      conversations: async () => ({ server_time: Date.now(), conversations: [group()], next_cursor: null }),
      blocks: async () => [],
      profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
    } as unknown as ChatApi;
    client = new ChatClient({ api, openLink: (events) => (link = new FakeLink(events)), persistOutbox: () => {} }, ME, []);
    client.start();
    await vi.advanceTimersByTimeAsync(0);
  });

  afterEach(() => client.stop());

  it("typing goes as a typing frame, never into the outbox", () => {
    link.open();
    client.typing("g1", "hi");
    client.typingStopped("g1");
    expect(link.of("typing")).toEqual([
      { action: "typing", conversation_id: "g1", active: true },
      { action: "typing", conversation_id: "g1", active: false },
    ]);
    expect(client.getState().outbox).toEqual([]);
  });

  it("a stop owed while the link was down goes on the next link", () => {
    link.open();
    client.typing("g1", "hi");
    link.drop();
    client.typingStopped("g1");
    link.open();
    expect(link.of("typing")).toEqual([
      { action: "typing", conversation_id: "g1", active: true },
      { action: "typing", conversation_id: "g1", active: false },
    ]);
  });

  it("typing while the link is down sends nothing, then or later", () => {
    client.typing("g1", "hi");
    link.open();
    vi.advanceTimersByTime(6_000);
    expect(link.of("typing")).toEqual([]);
  });
});

describe("showing who is typing", () => {
  function loaded(): ChatState {
    return reduce(initialState(ME), {
      type: "conversations_loaded", list: { server_time: NOW, conversations: [group()] }, now: NOW,
    });
  }
  const typingOf = (user_id: string, active = true, at = NOW): ServerFrame => ({ type: "typing", conversation_id: "g1", user_id, active, at });
  const at = (state: ChatState, frame: ServerFrame, now: number) => reduce(state, { type: "frame", frame, now });
  const line = (state: ChatState, now: number) => typingLine(typingNames(state, state.conversations.g1, now));

  it("one, two, then three people typing", () => {
    let state = at(loaded(), typingOf("u-bob"), NOW);
    expect(line(state, NOW)).toBe("Bob is typing…");
    state = at(state, typingOf("u-alice"), NOW);
    expect(line(state, NOW)).toBe("Alice and Bob are typing…");
    state = at(state, typingOf("u-carol"), NOW);
    expect(line(state, NOW)).toBe("3 people are typing…");
  });

  it("goes stale 6 s after the last refresh, and a refresh keeps it", () => {
    let state = at(loaded(), typingOf("u-bob"), NOW);
    state = at(state, typingOf("u-bob", true, NOW + 3_000), NOW + 3_000);
    expect(line(state, NOW + 8_999)).toBe("Bob is typing…");
    expect(line(state, NOW + 9_000)).toBe("");
    const swept = reduce(state, { type: "expire_due", now: NOW + 9_000 });
    expect(swept.typing.g1).toBeUndefined();
  });

  it("stops at once on active: false", () => {
    const state = at(at(loaded(), typingOf("u-bob"), NOW), typingOf("u-bob", false), NOW + 1);
    expect(line(state, NOW + 1)).toBe("");
  });

  it("stops at once when their message arrives", () => {
    const state = at(at(loaded(), typingOf("u-bob"), NOW), {
      type: "message", conversation_id: "g1", message_id: "m1", seq: 1, sender_id: "u-bob", sender_device_id: "d",
      client_msg_id: "x-1", body: "hi", created_at: NOW, expires_at: NOW + 60_000,
    }, NOW + 1);
    expect(line(state, NOW + 1)).toBe("");
  });

  it("a start that reached the server before the stop shown is ignored", () => {
    // The server handles one socket's frames concurrently: Bob's stop can overtake his start.
    let state = at(loaded(), typingOf("u-bob", false, NOW + 40), NOW + 50);
    state = at(state, typingOf("u-bob", true, NOW), NOW + 51);
    expect(line(state, NOW + 51)).toBe("");
    state = at(state, typingOf("u-bob", true, NOW + 40), NOW + 52); // the same instant: the stop wins
    expect(line(state, NOW + 52)).toBe("");
    state = at(state, typingOf("u-bob", true, NOW + 2_000), NOW + 2_010); // typing again
    expect(line(state, NOW + 2_010)).toBe("Bob is typing…");
  });

  it("an older refresh does not put the stale time back", () => {
    let state = at(loaded(), typingOf("u-bob", true, NOW + 3_000), NOW + 3_000);
    state = at(state, typingOf("u-bob", true, NOW), NOW + 3_010);
    expect(line(state, NOW + 9_005)).toBe("");
  });

  it("after their message, a start older than it stays out", () => {
    const message: ServerFrame = {
      type: "message", conversation_id: "g1", message_id: "m1", seq: 1, sender_id: "u-bob", sender_device_id: "d",
      client_msg_id: "x-1", body: "hi", created_at: NOW, expires_at: NOW + 60_000,
    };
    let state = at(at(loaded(), typingOf("u-bob", true, NOW + 10), NOW + 10), message, NOW + 20);
    state = at(state, typingOf("u-bob", true, NOW + 5), NOW + 21);
    expect(line(state, NOW + 21)).toBe("");
  });

  it("the link dropping forgets who is typing: a stop sent meanwhile would never come", () => {
    let state = reduce(at(loaded(), typingOf("u-bob"), NOW), { type: "link_changed", link: "online" });
    state = at(state, typingOf("u-alice"), NOW);
    state = reduce(state, { type: "link_changed", link: "connecting" });
    expect(line(state, NOW + 1)).toBe("");
    state = reduce(state, { type: "link_changed", link: "online" });
    state = at(state, typingOf("u-bob", true, NOW + 3_000), NOW + 3_000); // Bob's next refresh
    expect(line(state, NOW + 3_000)).toBe("Bob is typing…");
  });

  it("a sweep with nobody stale changes nothing", () => {
    const state = at(loaded(), typingOf("u-bob"), NOW);
    expect(reduce(state, { type: "expire_due", now: NOW + 1_000 })).toBe(state);
  });
});
