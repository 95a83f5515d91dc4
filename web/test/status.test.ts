import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient } from "../src/client";
import { type NotificationText, type Notifier, notificationFor } from "../src/notifications";
import type { Conversation, Message, ServerFrame } from "../src/protocol";
import { pendingProgress, waitingSummary } from "../src/sending";
import { type ChatState, type PendingSend, initialState, reduce } from "../src/store";
import { FakeLink } from "./fakeLink";


const ME = "u-me";
const PEER = "u-peer";
const OTHER = "u-other";

function member(user_id: string, display_name: string | null = null) {
  return { user_id, phone: `+1${user_id.length}`, display_name, role: null, online: null, last_seen_at: null, read_seq: 0, delivered_seq: 0 };
}

function conversation(id: string, fields: Partial<Conversation> = {}): Conversation {
  return {
    id, kind: "direct", title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0, last_message: null,
    request: false, members: [member(ME), member(PEER, "Bob")], ...fields,
  };
}

function pending(id: string, fields: Partial<PendingSend> = {}): PendingSend {
  return { client_msg_id: id, conversation_id: "c1", body: `body ${id}`, queued_at: 0, ...fields };
}

function message(fields: Partial<Message> = {}): Message {
  return {
    conversation_id: "c1", message_id: "m1", seq: 1, sender_id: PEER, sender_device_id: "d", client_msg_id: "x-1",
    body: "see you at eight", created_at: 1_000, expires_at: 100_000, ...fields,
  };
}

/** A state that lists these conversations, with these people blocked. */
function stateWith(conversations: Conversation[], blocked: string[] = []): ChatState {
  const listed = reduce(initialState(ME), {
    type: "conversations_loaded", list: { server_time: 0, conversations, next_cursor: null }, now: 0,
  });
  return reduce(listed, {
    type: "blocks_loaded", blocks: blocked.map((user_id) => ({ user_id, phone: "+2", display_name: null, blocked_at: 1 })),
  });
}

describe("a pending message says where it stands", () => {
  it("a rate-limited message counts down to when it goes, and so does the one written after it", () => {
    const outbox = [pending("a", { retry_at: 12_000, retry_code: "rate_limited" }), pending("b")];
    expect(pendingProgress(outbox, outbox[0], "online", 0)).toEqual({ kind: "retry_in", seconds: 12, code: "rate_limited" });
    expect(pendingProgress(outbox, outbox[1], "online", 0)).toEqual({ kind: "retry_in", seconds: 12, code: "rate_limited" });
    expect(pendingProgress(outbox, outbox[0], "online", 10_500)).toEqual({ kind: "retry_in", seconds: 2, code: "rate_limited" });
    expect(pendingProgress(outbox, outbox[0], "online", 12_000)).toEqual({ kind: "sending" });
  });

  it("a message in another chat is not held by that chat's rate limit", () => {
    const outbox = [pending("a", { retry_at: 12_000, retry_code: "rate_limited" }), pending("b", { conversation_id: "c2" })];
    expect(pendingProgress(outbox, outbox[1], "online", 0)).toEqual({ kind: "sending" });
  });

  it("a message on a dead link waits for the connection; one refused for good says why", () => {
    const outbox = [pending("a"), pending("b", { failed: "not_found" })];
    expect(pendingProgress(outbox, outbox[0], "offline", 0)).toEqual({ kind: "waiting_for_link" });
    expect(pendingProgress(outbox, outbox[0], "connecting", 0)).toEqual({ kind: "waiting_for_link" });
    expect(pendingProgress(outbox, outbox[1], "offline", 0)).toEqual({ kind: "failed", code: "not_found" });
  });

  it("the link status says how many messages wait, not counting those refused for good", () => {
    const outbox = [pending("a"), pending("b"), pending("c"), pending("d", { failed: "forbidden" })];
    expect(waitingSummary(outbox, "offline")).toBe("3 messages waiting");
    expect(waitingSummary(outbox.slice(0, 1), "connecting")).toBe("1 message waiting");
    expect(waitingSummary(outbox.slice(0, 2), "online")).toBe("2 messages sending");
    expect(waitingSummary(outbox.slice(3), "offline")).toBe("");
  });
});

describe("retrying a message that was not sent", () => {
  it("send_retried puts a failed message back in the queue, in its place, with the same id", () => {
    const state = { ...initialState(ME), outbox: [pending("a", { failed: "internal", retry_at: 5, retry_code: "x" }), pending("b")] };
    const retried = reduce(state, { type: "send_retried", client_msg_id: "a" });
    expect(retried.outbox).toEqual([pending("a"), pending("b")]);
  });

  it("send_retried leaves a message that has not failed alone", () => {
    const state = { ...initialState(ME), outbox: [pending("a")] };
    expect(reduce(state, { type: "send_retried", client_msg_id: "a" })).toBe(state);
  });
});

// --- the controller, with a link the test plays -----------------------------------------------


/** The link opens, the server answers: online, and an empty first sync (sends may go). */
function connect(link: FakeLink): void {
  link.open();
  link.says("online");
  link.receive({ type: "sync", req: "sync", server_time: Date.now(), conversations: [] } as ServerFrame);
}

class FakeNotifier implements Notifier {
  shown: Message[] = [];
  permission = "granted" as const;
  previews = true;
  onOpen = null;
  messageArrived(_state: ChatState, message: Message): void {
    this.shown.push(message);
  }
  async requestPermission() {
    return this.permission;
  }
  setPreviews(on: boolean): void {
    this.previews = on;
  }
}

let link: FakeLink;
let client: ChatClient;
let notifier: FakeNotifier;

async function started(): Promise<void> {
  notifier = new FakeNotifier();
  const api = {
    conversations: async () => ({ server_time: Date.now(), conversations: [conversation("c1")], next_cursor: null }),
    blocks: async () => [],
    profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
  } as unknown as ChatApi;
  client = new ChatClient({ api, openLink: (events) => (link = new FakeLink(events)), persistOutbox: () => {}, notifier }, ME, []);
  client.start();
  await vi.advanceTimersByTimeAsync(0);
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  client?.stop();
  vi.useRealTimers();
});

describe("the controller", () => {
  it("Retry sends a failed message again with the same client_msg_id", async () => {
    await started();
    connect(link);
    client.sendMessage("c1", "try me");
    const [first] = link.singles();
    link.receive({ type: "error", req: first.req, code: "not_found", message: "no such conversation" });
    expect(client.getState().outbox[0].failed).toBe("not_found");
    client.retryFailed(first.client_msg_id);
    const sends = link.singles();
    expect(sends).toHaveLength(2);
    expect(sends[1].client_msg_id).toBe(first.client_msg_id);
    expect(client.getState().outbox[0].failed).toBeUndefined();
  });

  it("a rate-limited send shows its wait from retry_after_ms, then goes", async () => {
    await started();
    connect(link);
    client.sendMessage("c1", "too fast");
    const [first] = link.singles();
    link.receive({ type: "error", req: first.req, code: "rate_limited", message: "slow down", retry_after_ms: 12_000 });
    const state = client.getState();
    expect(pendingProgress(state.outbox, state.outbox[0], state.link, Date.now()))
      .toEqual({ kind: "retry_in", seconds: 12, code: "rate_limited" });
    await vi.advanceTimersByTimeAsync(13_000);
    expect(link.singles()).toHaveLength(2);
  });

  it("a send unanswered for 5 s makes the link dead: it says offline and the message waits", async () => {
    await started();
    connect(link);
    client.sendMessage("c1", "into the void");
    await vi.advanceTimersByTimeAsync(4_000);
    expect(link.reportedDead).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(link.reportedDead).toBe(1);
    // what the real link says next (socket.test.ts), and what the person sees of it
    link.says("offline");
    const state = client.getState();
    expect(state.link).toBe("offline");
    expect(pendingProgress(state.outbox, state.outbox[0], state.link, Date.now())).toEqual({ kind: "waiting_for_link" });
  });

  it("typing probes the link", async () => {
    await started();
    client.probeLink();
    expect(link.probes).toBe(1);
  });

  it("a live message goes to the notifier with the state that holds it", async () => {
    await started();
    connect(link);
    link.receive({ type: "message", ...message({ created_at: Date.now(), expires_at: Date.now() + 60_000 }) });
    expect(notifier.shown.map((m) => m.body)).toEqual(["see you at eight"]);
  });
});

describe("whether a message notifies, and what it says", () => {
  const away = { looking: false, previews: true };
  const state = stateWith([
    conversation("c1"),
    conversation("g1", { kind: "group", title: "Climbing", members: [member(ME), member(PEER, "Bob"), member(OTHER)] }),
    conversation("r1", { request: true, members: [member(ME), member(OTHER)] }),
  ]);

  it("names the sender and shows the text while the tab is in the background", () => {
    expect(notificationFor(state, message(), away, 0)).toEqual<NotificationText>({
      title: "Bob", body: "see you at eight", conversationId: "c1",
    });
  });

  it("in a group, names the sender and the group", () => {
    expect(notificationFor(state, message({ conversation_id: "g1" }), away, 0)?.title).toBe("Bob in Climbing");
  });

  it("with previews off, says only New message", () => {
    expect(notificationFor(state, message(), { looking: false, previews: false }, 0)).toEqual<NotificationText>({
      title: "New message", body: "", conversationId: "c1",
    });
  });

  it("says nothing while the person looks at the tab", () => {
    expect(notificationFor(state, message(), { looking: true, previews: true }, 0)).toBeNull();
  });

  it("never for my own message (another device), a blocked sender's, a request's or an expired one", () => {
    expect(notificationFor(state, message({ sender_id: ME }), away, 0)).toBeNull();
    expect(notificationFor(stateWith([conversation("c1")], [PEER]), message(), away, 0)).toBeNull();
    expect(notificationFor(state, message({ conversation_id: "r1", sender_id: OTHER }), away, 0)).toBeNull();
    expect(notificationFor(state, message({ expires_at: 500 }), away, 1_000)).toBeNull();
    expect(notificationFor(state, message({ conversation_id: "unknown" }), away, 0)).toBeNull();
  });

  it("a long message is cut to a preview", () => {
    const body = notificationFor(state, message({ body: "x".repeat(500) }), away, 0)?.body ?? "";
    expect([...body]).toHaveLength(140);
    expect(body.endsWith("…")).toBe(true);
  });
});
