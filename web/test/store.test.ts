import { describe, expect, it } from "vitest";
import type { Conversation, Message, ServerFrame } from "../src/protocol";
import {
  type ChatState, conversationName, hasGap, initialState, receiptOf, reduce, syncCursors, totalUnread, unreadCount,
} from "../src/store";

const ME = "u-me";
const PEER = "u-peer";
const BLOCKED = "u-blocked";
const NOW = 1_800_000_000_000;

function conversation(fields: Partial<Conversation> = {}): Conversation {
  return {
    id: "c1", kind: "direct", title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0,
    last_message: null, request: false,
    members: [
      { user_id: ME, phone: "+14155550100", display_name: null, role: "owner", online: true, last_seen_at: null, read_seq: 0, delivered_seq: 0 },
      { user_id: PEER, phone: "+14155550101", display_name: null, role: "member", online: false, last_seen_at: NOW - 60_000, read_seq: 0, delivered_seq: 0 },
    ],
    ...fields,
  };
}

function message(seq: number, fields: Partial<Message> = {}): Message {
  return {
    conversation_id: "c1", message_id: `m${seq}`, seq, sender_id: PEER, sender_device_id: "d-peer",
    client_msg_id: `client-${seq}`, body: `body ${seq}`, created_at: NOW + seq, expires_at: NOW + 60_000, ...fields,
  };
}

function loaded(fields: Partial<Conversation> = {}): ChatState {
  return reduce(initialState(ME), {
    type: "conversations_loaded", list: { server_time: NOW, conversations: [conversation(fields)] }, now: NOW,
  });
}

function frames(state: ChatState, ...incoming: ServerFrame[]): ChatState {
  return incoming.reduce((s, frame) => reduce(s, { type: "frame", frame, now: NOW }), state);
}

const pushed = (m: Message): ServerFrame => ({ type: "message", ...m });

describe("incoming messages", () => {
  it("a message from someone else counts one unread, and the same message again counts nothing", () => {
    const state = frames(loaded(), pushed(message(1)), pushed(message(1)));
    expect(state.conversations.c1.unread_count).toBe(1);
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([1]);
  });

  it("my own message from another device is not unread", () => {
    const state = frames(loaded(), pushed(message(1, { sender_id: ME })));
    expect(state.conversations.c1.unread_count).toBe(0);
  });

  it("messages are kept in seq order whatever order they arrive in", () => {
    const state = frames(loaded(), pushed(message(2)), pushed(message(1)));
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([1, 2]);
  });

  it("a gap holds the cursor back until the missing message arrives", () => {
    let state = frames(loaded(), pushed(message(1)), pushed(message(3)));
    expect(state.conversations.c1.held_seq).toBe(1);
    state = frames(state, pushed(message(2)));
    expect(state.conversations.c1.held_seq).toBe(3);
    expect(syncCursors(state)).toEqual({ c1: 3 });
  });

  it("a message for a conversation this device does not know changes nothing", () => {
    const state = loaded();
    expect(frames(state, pushed(message(1, { conversation_id: "elsewhere" })))).toBe(state);
  });
});

describe("sending", () => {
  const queued = (state: ChatState) =>
    reduce(state, {
      type: "send_queued",
      pending: { client_msg_id: "cm-1", conversation_id: "c1", body: "hi", queued_at: NOW },
    });
  const sent = (fields: Partial<Extract<ServerFrame, { type: "sent" }>> = {}): ServerFrame => ({
    type: "sent", conversation_id: "c1", client_msg_id: "cm-1", message_id: "m1", seq: 1,
    created_at: NOW, expires_at: NOW + 60_000, duplicate: false, ...fields,
  });

  it("sent turns the pending message into a message, once, even when a retry's sent arrives too", () => {
    const state = frames(queued(loaded()), sent(), sent({ duplicate: true }));
    expect(state.outbox).toEqual([]);
    expect(state.conversations.c1.messages).toHaveLength(1);
    expect(state.conversations.c1.messages[0]).toMatchObject({ body: "hi", sender_id: ME, seq: 1 });
    expect(state.conversations.c1.unread_count).toBe(0);
  });

  it("my message arriving by sync settles its pending send, whose sent was lost", () => {
    const state = frames(queued(loaded()), {
      type: "sync", server_time: NOW,
      conversations: [{ conversation_id: "c1", last_seq: 1, read_seq: 0, unread_count: 0, has_more: false, first_seq: 1,
        messages: [message(1, { sender_id: ME, client_msg_id: "cm-1", body: "hi" })] }],
    });
    expect(state.outbox).toEqual([]);
    expect(state.conversations.c1.messages.map((m) => m.body)).toEqual(["hi"]);
  });

  it("a retry answered with expired: true leaves nothing to show", () => {
    const state = frames(queued(loaded()), sent({ duplicate: true, expired: true }));
    expect(state.outbox).toEqual([]);
    expect(state.conversations.c1.messages).toEqual([]);
  });

  it("a rate-limited send stays queued for later; any other refusal marks it failed", () => {
    let state = reduce(queued(loaded()), { type: "send_refused", client_msg_ids: ["cm-1"], code: "rate_limited", retry_at: NOW + 500 });
    expect(state.outbox[0]).toMatchObject({ retry_at: NOW + 500 });
    expect(state.outbox[0].failed).toBeUndefined();
    state = reduce(state, { type: "send_refused", client_msg_ids: ["cm-1"], code: "too_large" });
    expect(state.outbox[0].failed).toBe("too_large");
  });
});

describe("sync", () => {
  const entry = (fields: object) => ({
    conversation_id: "c1", last_seq: 3, read_seq: 1, unread_count: 2, messages: [], has_more: false, first_seq: 1, ...fields,
  });
  const sync = (...entries: object[]): ServerFrame =>
    ({ type: "sync", server_time: NOW + 5_000, conversations: entries }) as ServerFrame;

  it("the last page moves the cursor to last_seq and takes the server's counts", () => {
    const state = frames(loaded(), sync(entry({ messages: [message(2), message(3)] })));
    const c = state.conversations.c1;
    expect(c.held_seq).toBe(3);
    expect(c.unread_count).toBe(2);
    expect(c.messages.map((m) => m.seq)).toEqual([2, 3]);
    expect(state.clock_offset_ms).toBe(5_000);
  });

  it("a page with more to come moves the cursor only to its newest message", () => {
    const state = frames(loaded(), sync(entry({ last_seq: 9, messages: [message(1), message(2)], has_more: true })));
    expect(state.conversations.c1.held_seq).toBe(2);
  });

  it("what came before first_seq counts as held: it can never arrive", () => {
    const state = frames(loaded(), sync(entry({ last_seq: 9, first_seq: 5, messages: [message(5), message(6)], has_more: true })));
    expect(state.conversations.c1.held_seq).toBe(6);
    const nothingYet = frames(loaded(), sync(entry({ last_seq: 9, first_seq: 5, messages: [], has_more: true })));
    expect(nothingYet.conversations.c1.held_seq).toBe(4);
  });

  it("messages older than first_seq are dropped", () => {
    const state = frames(loaded(), pushed(message(1)), sync(entry({ first_seq: 2, messages: [message(2)] })));
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([2]);
  });
});

describe("expiry", () => {
  it("expired drops the listed ranges and everything up to up_to_seq, preview included", () => {
    let state = frames(loaded(), ...[1, 2, 3, 4, 5].map((seq) => pushed(message(seq))));
    state = frames(state, { type: "expired", conversation_id: "c1", ranges: [[5, 5]], up_to_seq: 2 });
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([3, 4]);
    expect(state.conversations.c1.last_message?.seq).toBe(4);
  });

  it("seqs listed as expired count as held, so a gap made only of them closes", () => {
    let state = frames(loaded(), pushed(message(1)), pushed(message(4)));
    expect(hasGap(state.conversations.c1)).toBe(true);
    state = frames(state, { type: "expired", conversation_id: "c1", ranges: [[2, 3]], up_to_seq: 0 });
    expect(state.conversations.c1.held_seq).toBe(4);
    expect(hasGap(state.conversations.c1)).toBe(false);
  });

  it("expired seqs not yet reached are remembered until the cursor gets there", () => {
    let state = frames(loaded(), { type: "expired", conversation_id: "c1", ranges: [[3, 4]], up_to_seq: 1 });
    expect(state.conversations.c1.held_seq).toBe(1);
    state = frames(state, pushed(message(2)));
    expect(state.conversations.c1.held_seq).toBe(4);
  });

  it("a message is gone on screen the moment it expires by the server's clock, and stops counting as unread", () => {
    let state = frames(loaded(), pushed(message(1, { expires_at: NOW + 10_000 })), pushed(message(2)));
    state = frames(state, { type: "pong", server_time: NOW + 9_000 }); // the server's clock runs 9 s ahead
    expect(state.conversations.c1.unread_count).toBe(2);
    state = reduce(state, { type: "expire_due", now: NOW + 999 });
    expect(state.conversations.c1.messages).toHaveLength(2);
    state = reduce(state, { type: "expire_due", now: NOW + 1_000 });
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([2]);
    expect(state.conversations.c1.unread_count).toBe(1);
  });
});

describe("receipts, presence and counters", () => {
  it("my message goes from sent to delivered to read as the peer's cursors pass it", () => {
    let state = frames(loaded(), pushed(message(1, { sender_id: ME })));
    const mine = state.conversations.c1.messages[0];
    expect(receiptOf(state, state.conversations.c1, mine)).toBe("sent");
    state = frames(state, { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "delivered", seq: 1 });
    expect(receiptOf(state, state.conversations.c1, mine)).toBe("delivered");
    state = frames(state, { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "read", seq: 1 });
    expect(receiptOf(state, state.conversations.c1, mine)).toBe("read");
  });

  it("a receipt never moves a cursor back", () => {
    const state = frames(loaded(),
      { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "delivered", seq: 5 },
      { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "delivered", seq: 3 });
    expect(state.conversations.c1.members[1].delivered_seq).toBe(5);
  });

  it("presence updates the user in every conversation they share", () => {
    let state = reduce(initialState(ME), {
      type: "conversations_loaded", now: NOW,
      list: { server_time: NOW, conversations: [conversation(), conversation({ id: "c2", kind: "group" })] },
    });
    state = frames(state, { type: "presence", user_id: PEER, online: true, last_seen_at: NOW });
    expect(Object.values(state.conversations).map((c) => c.members[1].online)).toEqual([true, true]);
  });

  it("unread sets the count the server computed; reading locally clears what I hold", () => {
    let state = frames(loaded(), pushed(message(1)), pushed(message(2)));
    state = frames(state, { type: "unread", conversation_id: "c1", count: 1 });
    expect(state.conversations.c1.unread_count).toBe(1);
    state = reduce(state, { type: "read_locally", conversation_id: "c1", seq: 2 });
    expect(state.conversations.c1).toMatchObject({ read_seq: 2, unread_count: 0 });
  });

  it("a list read before a receipt arrived never moves the member's cursors back; one now hidden stays hidden", () => {
    let state = frames(loaded(), { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "delivered", seq: 4 });
    state = reduce(state, { type: "conversations_loaded", now: NOW, list: { server_time: NOW, conversations: [conversation()] } });
    expect(state.conversations.c1.members[1].delivered_seq).toBe(4);
    const hidden = conversation().members.map((m) => ({ ...m, read_seq: null }));
    state = reduce(state, { type: "conversations_loaded", now: NOW, list: { server_time: NOW, conversations: [conversation({ members: hidden })] } });
    expect(state.conversations.c1.members[1].read_seq).toBeNull();
  });

  it("reloading the list keeps the messages this device holds", () => {
    const state = frames(loaded(), pushed(message(1)));
    const reloaded = reduce(state, {
      type: "conversations_loaded", now: NOW,
      list: { server_time: NOW, conversations: [conversation({ last_seq: 1, unread_count: 1 })] },
    });
    expect(reloaded.conversations.c1.messages.map((m) => m.seq)).toEqual([1]);
    expect(reloaded.conversations.c1.held_seq).toBe(1);
  });
});

describe("message requests", () => {
  it("the list's request flag is kept, and a conversation without one is a chat", () => {
    expect(loaded({ request: true }).conversations.c1.request).toBe(true);
    const { request: _r, ...older } = conversation();
    const state = reduce(initialState(ME), {
      type: "conversations_loaded", now: NOW, list: { server_time: NOW, conversations: [older as Conversation] },
    });
    expect(state.conversations.c1.request).toBe(false);
  });

  it("my message in a request, once sent, accepts it", () => {
    let state = reduce(loaded({ request: true }), {
      type: "send_queued", pending: { client_msg_id: "cm-1", conversation_id: "c1", body: "sure", queued_at: NOW },
    });
    expect(state.conversations.c1.request).toBe(true);
    state = frames(state, { type: "sent", conversation_id: "c1", client_msg_id: "cm-1", message_id: "m1", seq: 1,
      created_at: NOW, expires_at: NOW + 60_000, duplicate: false });
    expect(state.conversations.c1.request).toBe(false);
    expect(state.conversations.c1.messages).toHaveLength(1);
  });

  it("a declined request leaves the list with anything still queued for it", () => {
    let state = reduce(loaded({ request: true }), {
      type: "send_queued", pending: { client_msg_id: "cm-1", conversation_id: "c1", body: "x", queued_at: NOW },
    });
    state = reduce(state, { type: "conversation_removed", conversation_id: "c1" });
    expect(state.conversations).toEqual({});
    expect(state.outbox).toEqual([]);
  });

  it("a conversation pushed to me joins the list; being removed from one drops it", () => {
    let state = frames(initialState(ME), { type: "conversation", change: "created", by: PEER, conversation: conversation({ request: true }) });
    expect(state.conversations.c1.request).toBe(true);
    state = frames(state, { type: "member", conversation_id: "c1", user_id: ME, change: "removed", by: PEER });
    expect(state.conversations.c1).toBeUndefined();
  });

  it("a frame type this client does not know changes nothing", () => {
    const state = loaded();
    expect(frames(state, { type: "from-the-future" } as unknown as ServerFrame)).toBe(state);
  });
});

describe("names", () => {
  it("a member shows by display name where one is set, else by phone", () => {
    const state = loaded({
      members: [
        { ...conversation().members[0] },
        { ...conversation().members[1], display_name: "  Bob  " },
      ],
    });
    expect(conversationName(state, state.conversations.c1)).toBe("Bob");
    expect(conversationName(loaded(), loaded().conversations.c1)).toBe("+14155550101");
  });
});

describe("blocked people", () => {
  const group = (fields: Partial<Conversation> = {}) => conversation({
    kind: "group",
    members: [...conversation().members, { ...conversation().members[1], user_id: BLOCKED, phone: "+14155550199" }],
    ...fields,
  });
  const block = { user_id: BLOCKED, phone: "+14155550199", display_name: null, blocked_at: NOW };
  const withBlocked = (fields: Partial<Conversation> = {}) =>
    reduce(reduce(initialState(ME), { type: "blocks_loaded", blocks: [block] }), {
      type: "conversations_loaded", now: NOW, list: { server_time: NOW, conversations: [group(fields)] },
    });
  const sync = (...messages: Message[]): ServerFrame => ({
    type: "sync", server_time: NOW,
    conversations: [{ conversation_id: "c1", last_seq: messages.at(-1)?.seq ?? 0, read_seq: 0,
      unread_count: messages.length, messages, has_more: false, first_seq: 1 }],
  });

  it("their pushed message is never shown nor counted, yet the held cursor moves over it", () => {
    const state = frames(withBlocked(), pushed(message(1, { sender_id: BLOCKED })), pushed(message(2)));
    const c = state.conversations.c1;
    expect(c.messages.map((m) => m.seq)).toEqual([2]);
    expect(c.unread_count).toBe(1);
    expect(c.held_seq).toBe(2);
    expect(c.last_message?.seq).toBe(2);
  });

  it("their message arriving after a gap is held until the gap fills", () => {
    let state = frames(withBlocked(), pushed(message(2, { sender_id: BLOCKED })));
    expect(state.conversations.c1.held_seq).toBe(0);
    state = frames(state, pushed(message(1)));
    expect(state.conversations.c1.held_seq).toBe(2);
    expect(state.conversations.c1.hidden_seqs).toEqual([]);
  });

  it("history from sync leaves theirs out, and the unread shown does not count them", () => {
    const state = frames(withBlocked(), sync(message(1, { sender_id: BLOCKED }), message(2), message(3, { sender_id: BLOCKED })));
    const c = state.conversations.c1;
    expect(c.messages.map((m) => m.seq)).toEqual([2]);
    expect(c.held_seq).toBe(3);
    expect(c.unread_count).toBe(3); // the server's count ...
    expect(unreadCount(state, c)).toBe(1); // ... but only what can be read shows
    expect(totalUnread(state)).toBe(1);
  });

  it("the list preview never shows their message", () => {
    const state = withBlocked({ last_seq: 1, last_message: message(1, { sender_id: BLOCKED }) });
    expect(state.conversations.c1.last_message).toBeNull();
  });

  it("blocking someone takes what they wrote off the screen at once; unblocking lets history back in", () => {
    let state = reduce(initialState(ME), {
      type: "conversations_loaded", now: NOW, list: { server_time: NOW, conversations: [group()] },
    });
    state = frames(state, pushed(message(1, { sender_id: BLOCKED })), pushed(message(2)));
    state = frames(state, { type: "presence", user_id: BLOCKED, online: true, last_seen_at: null });
    state = reduce(state, { type: "blocked", block });
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([2]);
    expect(state.conversations.c1.members[2].online).toBeNull(); // no presence either way
    expect(state.conversations.c1.held_seq).toBe(2);
    state = reduce(state, { type: "unblocked", user_id: BLOCKED });
    expect(state.blocked).toEqual({});
    state = reduce(state, { type: "history_loaded", conversation_id: "c1", messages: [message(1, { sender_id: BLOCKED })] });
    expect(state.conversations.c1.messages.map((m) => m.seq)).toEqual([1, 2]);
  });

  it("my own messages are never hidden, whoever is blocked", () => {
    const state = frames(withBlocked(), pushed(message(1, { sender_id: ME })));
    expect(state.conversations.c1.messages).toHaveLength(1);
  });
});

describe("read receipts turned off", () => {
  const receiptsOff = (state: ChatState) => reduce(state, {
    type: "profile_loaded",
    profile: { id: ME, phone: "+14155550100", display_name: null, settings: { message_requests: true, read_receipts: false } },
  });

  it("my message shows delivered at most, and read receipts that still arrive change nothing", () => {
    let state = receiptsOff(frames(loaded(), pushed(message(1, { sender_id: ME }))));
    state = frames(state,
      { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "delivered", seq: 1 },
      { type: "receipt", conversation_id: "c1", user_id: PEER, kind: "read", seq: 1 });
    const c = state.conversations.c1;
    expect(c.members[1].read_seq).toBe(0);
    expect(receiptOf(state, c, c.messages[0])).toBe("delivered");
  });

  it("a peer whose read cursor is hidden (null) is never read", () => {
    const members = conversation().members.map((m) => ({ ...m, read_seq: null, delivered_seq: 5 }));
    const state = frames(loaded({ members }), pushed(message(1, { sender_id: ME })));
    expect(receiptOf(state, state.conversations.c1, state.conversations.c1.messages[0])).toBe("delivered");
  });
});
