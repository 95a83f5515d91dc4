import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient } from "../src/client";
import type { Block, Conversation, ConversationList, Message, ServerFrame } from "../src/protocol";
import { type PendingSend, totalUnread } from "../src/store";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const PEER = "u-peer";
const STRANGER = "u-stranger";


function conversation(id = "c1", fields: Partial<Conversation> = {}): Conversation {
  return {
    ...conversationFields(id),
    ...fields,
  };
}

function conversationFields(id: string): Conversation {
  return {
    id, kind: "direct", title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0, last_message: null,
    request: false,
    members: [ME, PEER].map((user_id) => ({
      user_id, phone: "+1", display_name: null, role: null, online: null, last_seen_at: null, read_seq: 0, delivered_seq: 0,
    })),
  };
}

function message(seq: number, conversation_id = "c1", sender_id = PEER): ServerFrame {
  const m: Message = {
    conversation_id, message_id: `m${seq}`, seq, sender_id, sender_device_id: "d", client_msg_id: `x-${seq}`,
    body: "hi", created_at: Date.now(), expires_at: Date.now() + 60_000,
  };
  return { type: "message", ...m };
}

function syncReply(fields: object = {}): ServerFrame {
  return {
    type: "sync", req: "sync", server_time: Date.now(),
    conversations: [{ conversation_id: "c1", last_seq: 0, read_seq: 0, unread_count: 0, messages: [], has_more: false, first_seq: 1, ...fields }],
  } as ServerFrame;
}

let link: FakeLink;
let client: ChatClient;
let listCalls: number;
let listCursors: (string | null | undefined)[];
let saved: PendingSend[][];
let calls: string[];
let blocks: Block[];
let history: Message[];

const blockOf = (user_id: string): Block => ({ user_id, phone: "+2", display_name: null, blocked_at: 1 });

/** A started client whose server lists these conversations, `pageSize` to a page, and these blocks. */
async function started(
  conversations: Conversation[] = [conversation()],
  { pageSize = 200, blocked = [] as string[] } = {},
): Promise<void> {
  listCalls = 0;
  listCursors = [];
  saved = [];
  calls = [];
  history = [];
  blocks = blocked.map(blockOf);
  const api: ChatApi = {
    conversations: async (cursor?: string | null): Promise<ConversationList> => {
      listCalls += 1;
      listCursors.push(cursor);
      const from = Number(cursor ?? 0);
      const next = from + pageSize < conversations.length ? String(from + pageSize) : null;
      return { server_time: Date.now(), conversations: conversations.slice(from, from + pageSize), next_cursor: next };
    },
    createConversation: async () => conversation(),
    updateConversation: async () => conversation(),
    acceptRequest: async (id) => {
      calls.push(`accept ${id}`);
      return conversation(id, { request: false });
    },
    declineRequest: async (id, block) => {
      calls.push(`decline ${id}${block ? " block" : ""}`);
      if (block) blocks.push(blockOf(STRANGER));
    },
    profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
    updateProfile: async () => {
      throw new Error("not in these tests");
    },
    blocks: async () => [...blocks],
    block: async (userId) => blockOf(userId),
    unblock: async (userId) => {
      calls.push(`unblock ${userId}`);
      blocks = blocks.filter((b) => b.user_id !== userId);
    },
    history: async (id, from, limit = 200) => {
      const mine = history.filter((m) => m.conversation_id === id);
      if (typeof from === "number" || "after" in from) {
        const afterSeq = typeof from === "number" ? from : from.after;
        calls.push(`history ${id} after ${afterSeq}`);
        return { messages: mine.filter((m) => m.seq > afterSeq), has_more: false };
      }
      calls.push(`history ${id} before ${from.before}`);
      const older = mine.filter((m) => m.seq < from.before);
      return { messages: older.slice(-limit), has_more: older.length > limit };
    },
  };
  client = new ChatClient({
    api,
    openLink: (events) => (link = new FakeLink(events)),
    persistOutbox: (outbox) => saved.push(outbox),
  }, ME, []);
  client.start();
  await vi.advanceTimersByTimeAsync(0); // the conversation list arrives
}

/** Opens the link and answers its first sync: the state every live test starts from. */
function online(): void {
  link.open();
  link.receive(syncReply());
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  client.stop();
  vi.useRealTimers();
});

describe("the outbox: every accepted message is sent, exactly once, with one client_msg_id", () => {
  it("a message written offline waits, then goes after the first sync when the link opens", async () => {
    await started();
    client.sendMessage("c1", "written offline");
    expect(saved.at(-1)).toHaveLength(1); // kept across a reload
    link.open();
    expect(link.of("sync")).toHaveLength(1);
    expect(link.singles()).toHaveLength(0); // the sync comes first
    link.receive(syncReply());
    expect(link.singles().map((f) => f.body)).toEqual(["written offline"]);
  });

  it("a send unanswered for 5 s counts the link dead, and goes again on the next link with the same client_msg_id", async () => {
    await started();
    online();
    client.sendMessage("c1", "hello");
    await vi.advanceTimersByTimeAsync(4_000);
    expect(link.reportedDead).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(link.reportedDead).toBe(1);
    online();
    const sends = link.singles();
    expect(sends.length).toBe(2);
    expect(new Set(sends.map((f) => f.client_msg_id)).size).toBe(1);

    link.receive({ type: "sent", req: sends[0].req, conversation_id: "c1", client_msg_id: sends[0].client_msg_id,
      message_id: "m1", seq: 1, created_at: Date.now(), expires_at: Date.now() + 60_000, duplicate: true });
    expect(client.getState().outbox).toEqual([]);
    expect(client.getState().conversations.c1.messages.map((m) => m.body)).toEqual(["hello"]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(link.singles().length).toBe(2);
  });

  it("a send in flight when the link drops goes again on the new link with the same id", async () => {
    await started();
    online();
    client.sendMessage("c1", "in the tunnel");
    const [first] = link.singles();
    link.drop();
    link.open();
    link.receive(syncReply());
    const sends = link.singles();
    expect(sends).toHaveLength(2);
    expect(sends[1].client_msg_id).toBe(first.client_msg_id);
  });

  it("a send whose sent was lost and that the sync after a reconnect shows stored never goes again", async () => {
    await started();
    online();
    client.sendMessage("c1", "stored, but the reply was lost");
    const [first] = link.singles();
    link.drop();
    link.open();
    link.receive(syncReply({ last_seq: 1, messages: [{
      conversation_id: "c1", message_id: "m1", seq: 1, sender_id: ME, sender_device_id: "d", client_msg_id: first.client_msg_id,
      body: first.body, created_at: Date.now(), expires_at: Date.now() + 60_000,
    }] }));
    await vi.advanceTimersByTimeAsync(30_000);
    expect(link.singles()).toHaveLength(1);
    expect(client.getState().outbox).toEqual([]);
    expect(client.getState().conversations.c1.messages.map((m) => m.body)).toEqual(["stored, but the reply was lost"]);
  });

  it("a send refused because the socket was not logged in goes again on the next link", async () => {
    await started();
    online();
    client.sendMessage("c1", "on a socket the server lost");
    const [first] = link.singles();
    link.receive({ type: "error", req: first.req, code: "unauthorized", message: "this connection is not logged in" });
    expect(client.getState().outbox[0].failed).toBeUndefined();
    link.drop(); // what the link does on unauthorized
    link.open();
    link.receive(syncReply());
    expect(link.singles().map((f) => f.client_msg_id)).toEqual([first.client_msg_id, first.client_msg_id]);
  });

  it("a rate-limited send waits retry_after_ms before it goes again", async () => {
    await started();
    online();
    client.sendMessage("c1", "too fast");
    const [first] = link.singles();
    link.receive({ type: "error", req: first.req, code: "rate_limited", message: "slow down", retry_after_ms: 5_000 });
    await vi.advanceTimersByTimeAsync(4_000);
    expect(link.singles()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(link.singles()).toHaveLength(2);
  });

  it("a send refused for good is marked failed and never retried", async () => {
    await started();
    online();
    client.sendMessage("c1", "nope");
    const [first] = link.singles();
    link.receive({ type: "error", req: first.req, code: "not_found", message: "no such conversation" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(link.singles()).toHaveLength(1);
    expect(client.getState().outbox[0].failed).toBe("not_found");
  });

  it("a body over 16 KB is refused before anything is queued", async () => {
    await started();
    expect(() => client.sendMessage("c1", "é".repeat(8_193))).toThrow("16 KB");
    expect(client.getState().outbox).toEqual([]);
  });
});

describe("keeping up with the server", () => {
  it("acks within 250 ms go as one cumulative ack per conversation", async () => {
    await started();
    online();
    link.receive(message(1));
    link.receive(message(2));
    link.receive(message(3));
    expect(link.of("ack")).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("ack")).toEqual([{ action: "ack", req: "cursor", conversation_id: "c1", seq: 3 }]);
  });

  it("a rate-limited ack goes again, cumulatively, once retry_after_ms has passed", async () => {
    await started();
    online();
    link.receive(message(1));
    await vi.advanceTimersByTimeAsync(250);
    link.receive({ type: "error", req: "cursor", code: "rate_limited", message: "slow down", retry_after_ms: 3_000 });
    link.receive(message(2));
    await vi.advanceTimersByTimeAsync(2_900);
    expect(link.of("ack").map((f) => f.seq)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(200);
    expect(link.of("ack").map((f) => f.seq)).toEqual([1, 2]);
  });

  it("a sync page with more to come asks for the next page from the new cursor", async () => {
    await started();
    link.open();
    link.receive(syncReply({ last_seq: 5, messages: [message(1), message(2)].map(({ type: _t, ...m }) => m), has_more: true }));
    expect(link.of("sync").map((f) => f.cursors)).toEqual([{ c1: 0 }, { c1: 2 }]);
  });

  it("a new link after a drop reads the list again: presence missed meanwhile is not in sync", async () => {
    await started();
    online();
    expect(listCalls).toBe(1);
    link.drop();
    link.open();
    await vi.advanceTimersByTimeAsync(0);
    expect(listCalls).toBe(2);
  });


  it("a message in a conversation this device does not know reloads the list", async () => {
    await started();
    online();
    link.receive(message(1, "new-chat"));
    await vi.advanceTimersByTimeAsync(0);
    expect(listCalls).toBe(2);
  });

  it("reading sends one read for the newest message, and again on a new link", async () => {
    await started();
    online();
    link.receive(message(1));
    link.receive(message(2));
    client.markRead("c1");
    expect(client.getState().conversations.c1.unread_count).toBe(0);
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("read")).toEqual([{ action: "read", req: "cursor", conversation_id: "c1", seq: 2 }]);
    link.drop();
    link.open();
    link.receive(syncReply({ last_seq: 2, read_seq: 2 }));
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("read")).toHaveLength(2);
  });
});

describe("the conversation list", () => {
  it("is read page by page, following next_cursor until it is null", async () => {
    await started(["c1", "c2", "c3", "c4", "c5"].map((id) => conversation(id)), { pageSize: 2 });
    expect(listCursors).toEqual([undefined, "2", "4"]);
    expect(Object.keys(client.getState().conversations).sort()).toEqual(["c1", "c2", "c3", "c4", "c5"]);
  });

  it("the first sync lists every conversation of every page", async () => {
    await started(["c1", "c2", "c3"].map((id) => conversation(id)), { pageSize: 1 });
    link.open();
    expect(link.of("sync")[0].cursors).toEqual({ c1: 0, c2: 0, c3: 0 });
  });
});

describe("a sync reply that covers only some conversations", () => {
  const entry = (conversation_id: string, fields: object = {}) => ({
    conversation_id, last_seq: 0, read_seq: 0, unread_count: 0, messages: [], has_more: false, first_seq: 1, ...fields,
  });
  const strip = (frame: ServerFrame) => {
    const { type: _t, ...m } = frame as Extract<ServerFrame, { type: "message" }>;
    return m;
  };

  it("more_conversations asks again at once with the cursors now held, and the outbox waits for the end", async () => {
    await started([conversation("c1"), conversation("c2")]);
    client.sendMessage("c2", "after the sync");
    link.open();
    link.receive({
      type: "sync", req: "sync", server_time: Date.now(), more_conversations: true,
      conversations: [entry("c1", { last_seq: 2, messages: [message(1), message(2)].map(strip) })],
    });
    expect(link.of("sync").map((f) => f.cursors)).toEqual([{ c1: 0, c2: 0 }, { c1: 2, c2: 0 }]);
    expect(link.singles()).toHaveLength(0);

    link.receive({
      type: "sync", req: "sync", server_time: Date.now(),
      conversations: [entry("c2", { last_seq: 1, messages: [strip(message(1, "c2"))] })],
    });
    expect(link.of("sync")).toHaveLength(2);
    expect(link.singles().map((f) => f.body)).toEqual(["after the sync"]);
    expect(client.getState().conversations.c2.messages).toHaveLength(1);
  });

  it("an entry with nothing left moves its cursor to last_seq: what is missing expired", async () => {
    await started([conversation("c1"), conversation("c2")]);
    link.open();
    link.receive({
      type: "sync", req: "sync", server_time: Date.now(), more_conversations: true,
      conversations: [entry("c1", { last_seq: 7, first_seq: 8 })],
    });
    expect(link.of("sync").at(-1)?.cursors).toEqual({ c1: 7, c2: 0 });
  });

  it("more_conversations with cursors that did not move waits before asking again", async () => {
    await started([conversation("c1"), conversation("c2")]);
    link.open();
    link.receive({ type: "sync", req: "sync", server_time: Date.now(), more_conversations: true, conversations: [] });
    expect(link.of("sync")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(link.of("sync")).toHaveLength(2);
  });
});

describe("message requests", () => {
  it("sending in a request accepts it once sent arrives", async () => {
    await started([conversation("c1", { request: true })]);
    online();
    client.sendMessage("c1", "hello, yes");
    expect(client.getState().conversations.c1.request).toBe(true);
    const [send] = link.singles();
    link.receive({ type: "sent", req: send.req, conversation_id: "c1", client_msg_id: send.client_msg_id,
      message_id: "m1", seq: 1, created_at: Date.now(), expires_at: Date.now() + 60_000, duplicate: false });
    expect(client.getState().conversations.c1.request).toBe(false);
  });

  it("accept makes it a chat; decline with block removes it and loads the block list", async () => {
    await started([conversation("c1", { request: true }), conversation("c2", { request: true })]);
    await client.acceptRequest("c1");
    expect(client.getState().conversations.c1.request).toBe(false);
    await client.declineRequest("c2", true);
    expect(calls).toEqual(["accept c1", "decline c2 block"]);
    expect(client.getState().conversations.c2).toBeUndefined();
    expect(Object.keys(client.getState().blocked)).toEqual([STRANGER]);
  });

  it("presence of someone hidden until now (they accepted) reloads the list for their name", async () => {
    const c1 = conversation();
    await started([c1]);
    online();
    c1.members = c1.members.map((m) => ({ ...m, display_name: "Peer", online: true })); // what the server now says
    link.receive({ type: "presence", user_id: PEER, online: true, last_seen_at: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(listCalls).toBe(2);
    expect(client.getState().conversations.c1.members[1].display_name).toBe("Peer");
    link.receive({ type: "presence", user_id: PEER, online: false, last_seen_at: Date.now() });
    await vi.advanceTimersByTimeAsync(0);
    expect(listCalls).toBe(2);
  });

  it("a conversation pushed as created shows at once and its messages are asked for", async () => {
    await started([]);
    online();
    link.receive({ type: "conversation", change: "created", by: STRANGER, conversation: conversation("c9", { request: true }) });
    expect(client.getState().conversations.c9.request).toBe(true);
    expect(link.of("sync").at(-1)?.cursors).toEqual({ c9: 0 });
  });
});

describe("blocked people", () => {
  const group = () => conversation("g1", {
    kind: "group",
    members: [ME, PEER, STRANGER].map((user_id) => ({
      user_id, phone: "+1", display_name: null, role: null, online: null, last_seen_at: null, read_seq: 0, delivered_seq: 0,
    })),
  });

  it("a blocked sender's message is never shown nor counted, and the ack still covers it", async () => {
    await started([group()], { blocked: [STRANGER] });
    online();
    link.receive(message(1, "g1", STRANGER));
    link.receive(message(2, "g1", PEER));
    const state = client.getState();
    expect(state.conversations.g1.messages.map((m) => m.seq)).toEqual([2]);
    expect(totalUnread(state)).toBe(1);
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("ack")).toEqual([{ action: "ack", req: "cursor", conversation_id: "g1", seq: 2 }]);
  });

  it("blocking from a chat hides what they wrote at once; unblocking reads it back", async () => {
    await started([group(), conversation("c1")]);
    link.open();
    link.receive(message(1, "g1", STRANGER));
    await client.block(STRANGER);
    expect(client.getState().conversations.g1.messages).toEqual([]);
    history = [message(1, "g1", STRANGER), message(2, "g1", STRANGER)].map(({ type: _t, ...m }) => m as Message);
    await client.unblock(STRANGER);
    expect(calls).toEqual([`unblock ${STRANGER}`, "history g1 after 0"]);
    expect(client.getState().conversations.g1.messages.map((m) => m.seq)).toEqual([1, 2]);
  });
});

describe("acks in big groups", () => {
  // A group the server lists with `presence_pushed: false` pushes nobody a receipt: its acks
  // only move a cursor others read from the list every 30 s, so they go at most every 10 s.
  it("go at most every 10 s in a big group, cumulatively, while a small chat's go at once", async () => {
    await started([conversation("big", { kind: "group", presence_pushed: false }), conversation("c1")]);
    online();
    link.receive(message(1, "big"));
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("ack").map((f) => [f.conversation_id, f.seq])).toEqual([["big", 1]]);

    link.receive(message(2, "big"));
    link.receive(message(3, "big"));
    link.receive(message(1, "c1"));
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("ack").map((f) => [f.conversation_id, f.seq])).toEqual([["big", 1], ["c1", 1]]);

    await vi.advanceTimersByTimeAsync(9_500); // 9.75 s since the big group's first ack: not yet
    expect(link.of("ack")).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(250); // 10 s: the rest, as one ack
    expect(link.of("ack").map((f) => [f.conversation_id, f.seq])).toEqual([["big", 1], ["c1", 1], ["big", 3]]);
  });

  it("reads in a big group are not held back", async () => {
    await started([conversation("big", { kind: "group", presence_pushed: false })]);
    online();
    link.receive(message(1, "big"));
    await vi.advanceTimersByTimeAsync(250);
    link.receive(message(2, "big"));
    client.markRead("big");
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("read").map((f) => f.seq)).toEqual([2]);
  });
});
