import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient } from "../src/client";
import type { ClientFrame, Conversation, ConversationList, Message, ServerFrame } from "../src/protocol";
import type { Link, SocketEvents } from "../src/socket";
import type { PendingSend } from "../src/store";

const ME = "u-me";
const PEER = "u-peer";

/** The live connection, played by the test: it decides when the link is up and what arrives. */
class FakeLink implements Link {
  isOpen = false;
  sent: ClientFrame[] = [];
  constructor(private readonly events: SocketEvents) {}
  start(): void {}
  stop(): void {
    this.isOpen = false;
  }
  send(frame: ClientFrame): boolean {
    if (this.isOpen) this.sent.push(frame);
    return this.isOpen;
  }
  open(): void {
    this.isOpen = true;
    this.events.opened();
  }
  drop(): void {
    this.isOpen = false;
  }
  receive(frame: ServerFrame): void {
    this.events.frame(frame);
  }
  of<A extends ClientFrame["action"]>(action: A): Extract<ClientFrame, { action: A }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { action: A }> => f.action === action);
  }
}

function conversation(id = "c1"): Conversation {
  return {
    id, kind: "direct", title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0, last_message: null,
    members: [ME, PEER].map((user_id) => ({ user_id, phone: "+1", online: null, last_seen_at: null, read_seq: 0, delivered_seq: 0 })),
  };
}

function message(seq: number, conversation_id = "c1"): ServerFrame {
  const m: Message = {
    conversation_id, message_id: `m${seq}`, seq, sender_id: PEER, sender_device_id: "d", client_msg_id: `x-${seq}`,
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
let saved: PendingSend[][];

async function started(conversations: Conversation[] = [conversation()]): Promise<void> {
  listCalls = 0;
  saved = [];
  const api: ChatApi = {
    conversations: async (): Promise<ConversationList> => {
      listCalls += 1;
      return { server_time: Date.now(), conversations };
    },
    createConversation: async () => conversation(),
    updateConversation: async () => conversation(),
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
    expect(link.of("send")).toHaveLength(0); // the sync comes first
    link.receive(syncReply());
    expect(link.of("send").map((f) => f.body)).toEqual(["written offline"]);
  });

  it("an unanswered send goes again with the same client_msg_id until sent arrives", async () => {
    await started();
    online();
    client.sendMessage("c1", "hello");
    await vi.advanceTimersByTimeAsync(10_000);
    const sends = link.of("send");
    expect(sends.length).toBe(2);
    expect(new Set(sends.map((f) => f.client_msg_id)).size).toBe(1);

    link.receive({ type: "sent", req: sends[0].req, conversation_id: "c1", client_msg_id: sends[0].client_msg_id,
      message_id: "m1", seq: 1, created_at: Date.now(), expires_at: Date.now() + 60_000, duplicate: true });
    expect(client.getState().outbox).toEqual([]);
    expect(client.getState().conversations.c1.messages.map((m) => m.body)).toEqual(["hello"]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(link.of("send").length).toBe(2);
  });

  it("a send in flight when the link drops goes again on the new link with the same id", async () => {
    await started();
    online();
    client.sendMessage("c1", "in the tunnel");
    const [first] = link.of("send");
    link.drop();
    link.open();
    link.receive(syncReply());
    const sends = link.of("send");
    expect(sends).toHaveLength(2);
    expect(sends[1].client_msg_id).toBe(first.client_msg_id);
  });

  it("a rate-limited send waits retry_after_ms before it goes again", async () => {
    await started();
    online();
    client.sendMessage("c1", "too fast");
    const [first] = link.of("send");
    link.receive({ type: "error", req: first.req, code: "rate_limited", message: "slow down", retry_after_ms: 5_000 });
    await vi.advanceTimersByTimeAsync(4_000);
    expect(link.of("send")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(link.of("send")).toHaveLength(2);
  });

  it("a send refused for good is marked failed and never retried", async () => {
    await started();
    online();
    client.sendMessage("c1", "nope");
    const [first] = link.of("send");
    link.receive({ type: "error", req: first.req, code: "not_found", message: "no such conversation" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(link.of("send")).toHaveLength(1);
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

  it("a gap in seqs asks for a sync", async () => {
    await started();
    online();
    link.receive(message(1));
    link.receive(message(3));
    expect(link.of("sync").at(-1)?.cursors).toEqual({ c1: 1 });
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
