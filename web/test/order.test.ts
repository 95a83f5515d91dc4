// PROTOCOL "Keeping order": the sender's order survives a server that runs every frame
// concurrently, and a receiver shows by seq, fills gaps after a short hold, and acks only what
// it holds without a gap.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient } from "../src/client";
import type { ClientFrame, Conversation, Message, SendFrame, ServerFrame } from "../src/protocol";
import type { Link, SocketEvents } from "../src/socket";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const PEER = "u-peer";
const GAP_HOLD_MS = 1_000;

/** A deterministic shuffle (mulberry32), so a failure can be replayed. */
function shuffled<T>(items: T[], seed: number): T[] {
  let state = seed;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

const entriesOf = (frame: SendFrame) =>
  "messages" in frame ? frame.messages : [{ client_msg_id: frame.client_msg_id, body: frame.body }];

/** The server as API Gateway runs it: every frame waiting on the wire is handled concurrently,
 * so frames take seqs in any order (a batch's messages stay in the order listed, in one
 * transaction), and the `sent` replies come back in any order too. */
class ConcurrentServer implements Link {
  isOpen = false;
  stored: { seq: number; client_msg_id: string; body: string }[] = [];
  /** The most send frames ever waiting at once for one conversation. */
  mostInFlight = 0;
  /** Sends a rate limit allows per window (Infinity: none). */
  sendsPerWindow = Infinity;
  private sendsThisWindow = 0;
  private wire: ClientFrame[] = [];
  private round = 0;
  constructor(private readonly events: SocketEvents) {}
  start(): void {}
  stop(): void {}
  probe(): void {}
  reportDead(): void {
    this.isOpen = false;
  }
  send(frame: ClientFrame): boolean {
    if (this.isOpen) this.wire.push(frame);
    return this.isOpen;
  }
  open(): void {
    this.isOpen = true;
    this.events.opened();
    this.answerSyncs();
  }
  /** A new rate-limit window: the sends allowed start again. */
  newWindow(): void {
    this.sendsThisWindow = 0;
  }

  /** Handles every frame on the wire, as concurrent invocations would. */
  handleWaiting(): void {
    const sends = this.wire.filter((f): f is SendFrame => f.action === "send");
    this.wire = this.wire.filter((f) => f.action !== "send");
    this.mostInFlight = Math.max(this.mostInFlight, sends.length);
    const replies = shuffled(sends, ++this.round).flatMap((frame) => this.store(frame));
    shuffled(replies, ++this.round).forEach((reply) => this.events.frame(reply));
    this.answerSyncs();
  }

  private store(frame: SendFrame): ServerFrame[] {
    const entries = entriesOf(frame);
    if (this.sendsThisWindow + entries.length > this.sendsPerWindow) {
      return [{ type: "error", req: frame.req, code: "rate_limited", message: "slow down", retry_after_ms: 10_000 }];
    }
    this.sendsThisWindow += entries.length;
    return entries.map((entry) => {
      const before = this.stored.find((m) => m.client_msg_id === entry.client_msg_id);
      const stored = before ?? { seq: this.stored.length + 1, ...entry };
      if (!before) this.stored.push(stored);
      return {
        type: "sent", req: frame.req, conversation_id: frame.conversation_id, client_msg_id: entry.client_msg_id,
        message_id: `m${stored.seq}`, seq: stored.seq, created_at: Date.now(), expires_at: Date.now() + 60_000,
        duplicate: before !== undefined,
      };
    });
  }

  private answerSyncs(): void {
    const syncs = this.wire.filter((f) => f.action === "sync");
    this.wire = this.wire.filter((f) => f.action !== "sync");
    for (const sync of syncs) {
      const lastSeq = this.stored.length;
      this.events.frame({
        type: "sync", req: sync.req, server_time: Date.now(),
        conversations: [{ conversation_id: "c1", last_seq: lastSeq, read_seq: 0, unread_count: 0, messages: [], has_more: false, first_seq: 1 }],
      });
    }
  }
}


function conversation(): Conversation {
  return {
    id: "c1", kind: "direct", title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0,
    last_message: null, request: false,
    members: [ME, PEER].map((user_id) => ({
      user_id, phone: "+1", display_name: null, role: null, online: null, last_seen_at: null, read_seq: 0, delivered_seq: 0,
    })),
  };
}

const api = {
  conversations: async () => ({ server_time: Date.now(), conversations: [conversation()], next_cursor: null }),
  blocks: async () => [],
  profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
} as unknown as ChatApi;

let client: ChatClient;

async function startedWith<L extends Link>(makeLink: (events: SocketEvents) => L): Promise<L> {
  let link: L | undefined;
  client = new ChatClient({
    api,
    openLink: (events) => (link = makeLink(events)),
    persistOutbox: () => {},
    timing: { gapHoldMs: GAP_HOLD_MS },
  }, ME, []);
  client.start();
  await vi.advanceTimersByTimeAsync(0); // the conversation list arrives
  return link!;
}

const shownBodies = () => client.getState().conversations.c1.messages.map((m) => m.body);
const shownSeqs = () => client.getState().conversations.c1.messages.map((m) => m.seq);

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  client.stop();
  vi.useRealTimers();
});

describe("the sender's order", () => {
  const written = Array.from({ length: 50 }, (_, i) => `m${i}`);

  it("a burst of 50 written at once is stored and shown in the order written, though the server answers in any order", async () => {
    const server = await startedWith((events) => new ConcurrentServer(events));
    server.open();
    written.forEach((body) => client.sendMessage("c1", body));
    for (let round = 0; round < 10 && client.getState().outbox.length > 0; round += 1) server.handleWaiting();

    expect(client.getState().outbox).toEqual([]);
    expect(server.stored.map((m) => m.body)).toEqual(written);
    expect(shownBodies()).toEqual(written);
    expect(server.mostInFlight).toBe(1);
  });

  it("a backlog written offline goes after the reconnect's sync, in batches, in the order written", async () => {
    const server = await startedWith((events) => new ConcurrentServer(events));
    written.forEach((body) => client.sendMessage("c1", body));
    server.open();
    const rounds = 3; // 50 messages: batches of 20, 20 and 10
    for (let round = 0; round < rounds; round += 1) server.handleWaiting();

    expect(client.getState().outbox).toEqual([]);
    expect(server.stored.map((m) => m.body)).toEqual(written);
    expect(shownBodies()).toEqual(written);
  });

  it("a rate-limited batch goes again after retry_after_ms, and one too large to ever fit goes in smaller batches", async () => {
    const server = await startedWith((events) => new ConcurrentServer(events));
    server.sendsPerWindow = 5;
    written.slice(0, 12).forEach((body) => client.sendMessage("c1", body));
    server.open();
    for (let second = 1; second <= 120 && client.getState().outbox.length > 0; second += 1) {
      server.handleWaiting();
      await vi.advanceTimersByTimeAsync(1_000);
      if (second % 10 === 0) server.newWindow();
    }

    expect(client.getState().outbox).toEqual([]);
    expect(server.stored.map((m) => m.body)).toEqual(written.slice(0, 12));
    expect(shownBodies()).toEqual(written.slice(0, 12));
  });

  it("a frame whose messages are not all answered holds the next one back", async () => {
    const link = await startedWith((events) => new FakeLink(events));
    link.open();
    link.receive({ type: "sync", req: "sync", server_time: Date.now(), conversations: [] });
    client.sendMessage("c1", "first");
    client.sendMessage("c1", "second");
    client.sendMessage("c1", "third");
    expect(link.of("send")).toHaveLength(1);
    answer(link, 0, 1);
    const batch = link.of("send")[1];
    expect("messages" in batch && batch.messages.map((m) => m.body)).toEqual(["second", "third"]);
  });

  it("a batch refused as a bad request (a server without the batch form) goes again one by one, in order", async () => {
    const link = await startedWith((events) => new FakeLink(events));
    link.open();
    link.receive({ type: "sync", req: "sync", server_time: Date.now(), conversations: [] });
    ["first", "second", "third"].forEach((body) => client.sendMessage("c1", body));
    answer(link, 0, 1);
    const batch = link.of("send")[1];
    link.receive({ type: "error", req: batch.req, code: "bad_request", message: "client_msg_id is required" });
    answer(link, 2, 2);
    answer(link, 3, 3);
    expect(link.of("send").map((f) => ("messages" in f ? f.messages.map((m) => m.body) : f.body)))
      .toEqual(["first", ["second", "third"], "second", "third"]);
    expect(shownBodies()).toEqual(["first", "second", "third"]);
  });
});

/** The server stores the `index`th send frame (a single one) as `seq`, and says so. */
function answer(link: FakeLink, index: number, seq: number): void {
  const frame = link.of("send")[index];
  if (!("client_msg_id" in frame)) throw new Error("a batch where one message was expected");
  link.receive({ type: "sent", req: frame.req, conversation_id: "c1", client_msg_id: frame.client_msg_id,
    message_id: `m${seq}`, seq, created_at: Date.now(), expires_at: Date.now() + 60_000, duplicate: false });
}

describe("the receiver's order", () => {
  const pushed = (seq: number): ServerFrame => {
    const m: Message = {
      conversation_id: "c1", message_id: `m${seq}`, seq, sender_id: PEER, sender_device_id: "d", client_msg_id: `x-${seq}`,
      body: `body ${seq}`, created_at: Date.now(), expires_at: Date.now() + 60_000,
    };
    return { type: "message", ...m };
  };
  const syncReply = (messages: ServerFrame[], lastSeq: number): ServerFrame => ({
    type: "sync", req: "sync", server_time: Date.now(),
    conversations: [{
      conversation_id: "c1", last_seq: lastSeq, read_seq: 0, unread_count: 0, has_more: false, first_seq: 1,
      messages: messages.map((frame) => {
        const { type: _type, ...message } = frame as Extract<ServerFrame, { type: "message" }>;
        return message;
      }),
    }],
  });

  async function linkAfterFirstSync(): Promise<FakeLink> {
    const link = await startedWith((events) => new FakeLink(events));
    link.open();
    link.receive(syncReply([], 0));
    return link;
  }

  it("seq 3 before 2 shows 1, 2, 3 and asks for no sync when 2 comes within the hold", async () => {
    const link = await linkAfterFirstSync();
    link.receive(pushed(1));
    link.receive(pushed(3));
    expect(shownSeqs()).toEqual([1, 3]);
    await vi.advanceTimersByTimeAsync(GAP_HOLD_MS / 2);
    link.receive(pushed(2));
    expect(shownSeqs()).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(10 * GAP_HOLD_MS);
    expect(link.of("sync")).toHaveLength(1); // the first one, on open
    expect(client.getState().gap_syncs).toBe(0);
  });

  it("a gap still open after the hold is filled by exactly one sync", async () => {
    const link = await linkAfterFirstSync();
    link.receive(pushed(1));
    link.receive(pushed(3));
    await vi.advanceTimersByTimeAsync(GAP_HOLD_MS - 1);
    expect(link.of("sync")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(link.of("sync").map((f) => f.cursors)).toEqual([{ c1: 0 }, { c1: 1 }]);
    link.receive(syncReply([pushed(2), pushed(3)], 3));
    expect(shownSeqs()).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(10 * GAP_HOLD_MS);
    expect(link.of("sync")).toHaveLength(2);
    expect(client.getState().gap_syncs).toBe(1);
  });

  it("ack covers only the contiguous prefix this device holds", async () => {
    const link = await linkAfterFirstSync();
    link.receive(pushed(1));
    link.receive(pushed(3));
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("ack").map((f) => f.seq)).toEqual([1]);
    link.receive(pushed(2));
    await vi.advanceTimersByTimeAsync(250);
    expect(link.of("ack").map((f) => f.seq)).toEqual([1, 3]);
  });

  it("seqs that expired will never come: the ack moves over them, and no sync is needed", async () => {
    const link = await linkAfterFirstSync();
    link.receive(pushed(1));
    link.receive(pushed(4));
    link.receive({ type: "expired", conversation_id: "c1", ranges: [[2, 3]], up_to_seq: 0 });
    await vi.advanceTimersByTimeAsync(10 * GAP_HOLD_MS);
    expect(link.of("ack").map((f) => f.seq)).toEqual([4]);
    expect(client.getState().gap_syncs).toBe(0);
  });
});

describe("an honest link", () => {
  it("a send unanswered for 5 s makes the link known dead", async () => {
    const link = await startedWith((events) => new FakeLink(events));
    link.open();
    link.receive({ type: "sync", req: "sync", server_time: Date.now(), conversations: [] });
    client.sendMessage("c1", "into the void");
    await vi.advanceTimersByTimeAsync(4_000);
    expect(link.reportedDead).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(link.reportedDead).toBe(1);
  });

  it("the state shows what the link says it is", async () => {
    const link = await startedWith((events) => new FakeLink(events));
    expect(client.getState().link).toBe("connecting");
    link.says("online");
    expect(client.getState().link).toBe("online");
    link.says("offline");
    expect(client.getState().link).toBe("offline");
  });
});
