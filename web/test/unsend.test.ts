// PROTOCOL "Safety, management and the account", `unsend`: I take back one of my sent
// messages while the link is up; everyone's copy goes when `expired` (reason "unsent") comes,
// and an `error` answering my `req` says why not.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient, SendRefused } from "../src/client";
import type { Conversation, Message, ServerFrame } from "../src/protocol";
import { conversationsByActivity, totalUnread, unsendOf } from "../src/store";
import { explainUnsendRefusal } from "../src/views/unsending";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const PEER = "u-peer";

function conversation(): Conversation {
  return {
    id: "c1", kind: "direct", title: null, ttl_seconds: 86400, last_seq: 2, read_seq: 0, unread_count: 1,
    last_message: null, request: false,
    members: [ME, PEER].map((user_id) => ({
      user_id, phone: "+1", display_name: null, role: null, online: null, last_seen_at: null, read_seq: 0, delivered_seq: 0,
    })),
  };
}

function message(seq: number, sender_id: string, body: string): Message {
  return {
    conversation_id: "c1", message_id: `m${seq}`, seq, sender_id, sender_device_id: "d", client_msg_id: `x-${seq}`,
    body, created_at: Date.now() + seq, expires_at: Date.now() + 60_000,
  };
}

/** Theirs at seq 1 (unread), mine at seq 2. */
const HELD = [message(1, PEER, "theirs"), message(2, ME, "mine")];

const api = {
  conversations: async () => ({ server_time: Date.now(), conversations: [conversation()], next_cursor: null }),
  blocks: async () => [],
  profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
} as unknown as ChatApi;

let link: FakeLink;
let client: ChatClient;

async function online(): Promise<void> {
  client = new ChatClient({ api, openLink: (events) => (link = new FakeLink(events)), persistOutbox: () => {} }, ME, []);
  client.start();
  await vi.advanceTimersByTimeAsync(0); // the conversation list arrives
  link.open();
  link.receive({
    type: "sync", req: "sync", server_time: Date.now(),
    conversations: [{ conversation_id: "c1", last_seq: 2, read_seq: 0, unread_count: 1, messages: HELD, has_more: false, first_seq: 1 }],
  });
  link.says("online");
}

const seqs = () => client.getState().conversations.c1.messages.map((m) => m.seq);
const unsent = (seq: number, fields: object = {}): ServerFrame =>
  ({ type: "expired", conversation_id: "c1", ranges: [[seq, seq]], up_to_seq: 0, reason: "unsent", ...fields }) as ServerFrame;

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  client.stop();
  vi.useRealTimers();
});

describe("unsending one of my messages", () => {
  it("sends unsend with a req for my sent message, and shows it as unsending until the answer", async () => {
    await online();
    client.unsend("c1", 2);

    const [frame] = link.of("unsend");
    expect(frame).toEqual({ action: "unsend", req: expect.stringMatching(/^unsend:/), conversation_id: "c1", seq: 2 });
    expect(unsendOf(client.getState(), "c1", 2)).toEqual({ req: frame.req, conversation_id: "c1", seq: 2 });
    expect(seqs()).toEqual([1, 2]); // still shown, as "Unsending…"
  });

  it("refuses someone else's message and sends nothing", async () => {
    await online();
    expect(() => client.unsend("c1", 1)).toThrow(SendRefused);
    expect(link.of("unsend")).toEqual([]);
    expect(unsendOf(client.getState(), "c1", 1)).toBeUndefined();
  });

  it("refuses a message still pending (no seq yet) and sends nothing", async () => {
    await online();
    link.drop(); // the message waits in the outbox
    client.sendMessage("c1", "not sent yet");
    expect(client.getState().outbox).toHaveLength(1);
    expect(() => client.unsend("c1", 3)).toThrow(SendRefused);
    expect(link.of("unsend")).toEqual([]);
  });

  it("is refused while the link is down, in words", async () => {
    await online();
    link.drop();
    link.says("offline");
    expect(() => client.unsend("c1", 2)).toThrow("You're offline. A message can be unsent only while connected.");
    expect(link.sent.filter((f) => f.action === "unsend")).toEqual([]);
  });

  it("the expired frame with reason unsent removes the message, and the list preview goes back to the one before", async () => {
    await online();
    client.unsend("c1", 2);
    expect(conversationsByActivity(client.getState())[0].last_message?.seq).toBe(2);

    link.receive(unsent(2));

    expect(seqs()).toEqual([1]);
    expect(unsendOf(client.getState(), "c1", 2)).toBeUndefined();
    expect(client.getState().conversations.c1.last_message?.body).toBe("theirs");
  });

  it("an error frame answering its req is kept, explained, and dismissed; the message stays", async () => {
    await online();
    client.unsend("c1", 2);
    const req = link.of("unsend")[0].req!;

    link.receive({ type: "error", req: "something-else", code: "internal", message: "x" });
    expect(unsendOf(client.getState(), "c1", 2)?.refused).toBeUndefined();
    link.receive({ type: "error", req, code: "gone", message: "expired" });

    const refused = unsendOf(client.getState(), "c1", 2);
    expect(refused?.refused).toBe("gone");
    expect(explainUnsendRefusal(refused!.refused!)).toBe("This message has already expired, or was unsent already.");
    expect(seqs()).toEqual([1, 2]);
    client.dismissUnsend(req);
    expect(unsendOf(client.getState(), "c1", 2)).toBeUndefined();
  });

  it("an unsend the link dropped before answering says so, and can be tried again once online", async () => {
    await online();
    client.unsend("c1", 2);
    link.drop();
    link.says("offline");
    expect(unsendOf(client.getState(), "c1", 2)?.refused).toBe("offline");
    expect(explainUnsendRefusal("offline")).toMatch(/connection dropped/);

    link.open();
    link.says("online");
    client.unsend("c1", 2);
    expect(link.of("unsend")).toHaveLength(2);
    expect(unsendOf(client.getState(), "c1", 2)?.refused).toBeUndefined();
  });
});

describe("someone else unsends", () => {
  it("their message disappears here too, and the unread count falls", async () => {
    await online();
    expect(totalUnread(client.getState())).toBe(1);

    link.receive(unsent(1));
    link.receive({ type: "unread", conversation_id: "c1", count: 0 });

    expect(seqs()).toEqual([2]);
    expect(totalUnread(client.getState())).toBe(0);
  });

  it("the held cursor moves over the unsent seq: the next sync does not ask for it again", async () => {
    await online();
    link.receive(unsent(3));
    link.receive({ ...message(4, PEER, "after"), type: "message" });
    expect(client.getState().conversations.c1.held_seq).toBe(4);
  });

  it("a retried send of a message unsent meanwhile settles my outbox without showing it", async () => {
    await online();
    link.drop();
    client.sendMessage("c1", "gone before confirmed");
    const [pending] = client.getState().outbox;
    link.open();
    link.receive({
      type: "sync", req: "sync", server_time: Date.now(),
      conversations: [{ conversation_id: "c1", last_seq: 3, read_seq: 0, unread_count: 1, messages: [], has_more: false, first_seq: 1 }],
    });
    link.receive({
      type: "sent", conversation_id: "c1", client_msg_id: pending.client_msg_id, message_id: "m3", seq: 3,
      created_at: Date.now(), expires_at: Date.now() + 60_000, duplicate: true, expired: true,
    });
    expect(client.getState().outbox).toEqual([]);
    expect(seqs()).toEqual([1, 2]);
  });
});
