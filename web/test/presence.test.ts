// Presence in big groups (issue 24): the server pushes `presence` only for 1:1s and groups of at
// most PRESENCE_PUSH_MAX_MEMBERS, and lists a bigger group with `presence_pushed: false`. While
// such a group is on screen the client reads the list again every 30 s, so its members' online
// dots stay true; for any other chat it relies on the pushes and reads nothing more.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ChatApi, ChatClient, PRESENCE_REFRESH_MS } from "../src/client";
import type { Conversation, ConversationList, Member } from "../src/protocol";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const BOB = "u-bob";

function member(user_id: string, online: boolean): Member {
  return { user_id, phone: "+14155550100", display_name: null, role: "member", online, last_seen_at: null, read_seq: 0, delivered_seq: 0 };
}

function chat(id: string, kind: Conversation["kind"], presence_pushed: boolean | undefined, bobOnline: boolean): Conversation {
  return {
    id, kind, title: null, ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0, last_message: null,
    request: false, members: [member(ME, true), member(BOB, bobOnline)], presence_pushed,
  };
}

let client: ChatClient;
let listCalls: number;
let bobOnline: boolean;

/** A started client whose server lists a 1:1, a small group, a big group and one from a server
 * that predates `presence_pushed`, with Bob online as `bobOnline` says at each call. */
async function started(): Promise<void> {
  listCalls = 0;
  bobOnline = true;
  const api = {
    conversations: async (): Promise<ConversationList> => {
      listCalls += 1;
      return {
        server_time: Date.now(), next_cursor: null, conversations: [
          chat("direct", "direct", true, bobOnline), chat("small", "group", true, bobOnline),
          chat("big", "group", false, bobOnline), chat("older", "group", undefined, bobOnline),
        ],
      };
    },
    blocks: async () => [],
    profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
  } as unknown as ChatApi;
  client = new ChatClient({ api, openLink: (events) => new FakeLink(events), persistOutbox: () => {} }, ME, []);
  client.start();
  await vi.advanceTimersByTimeAsync(0); // the list arrives
}

const bobShownOnline = (id: string) => client.getState().conversations[id].members.find((m) => m.user_id === BOB)?.online;

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  client.stop();
  vi.useRealTimers();
});

describe("presence in big groups", () => {
  it("reads the list at once and every 30 s while a big group is shown, so its online dots stay true", async () => {
    await started();
    client.showing("big");
    await vi.advanceTimersByTimeAsync(0);
    expect(listCalls).toBe(2);

    bobOnline = false; // Bob's last device went: no frame says so in a big group
    await vi.advanceTimersByTimeAsync(PRESENCE_REFRESH_MS);
    expect(listCalls).toBe(3);
    expect(bobShownOnline("big")).toBe(false);

    await vi.advanceTimersByTimeAsync(PRESENCE_REFRESH_MS * 2);
    expect(listCalls).toBe(5);
  });

  it("stops reading the list once the big group is no longer shown", async () => {
    await started();
    client.showing("big");
    client.showing(null);
    await vi.advanceTimersByTimeAsync(PRESENCE_REFRESH_MS * 3);
    expect(listCalls).toBe(2); // the start, and the moment the group opened
  });

  it.each(["direct", "small", "older"])("relies on presence frames for a %s chat: no extra reads", async (id) => {
    await started();
    client.showing(id);
    await vi.advanceTimersByTimeAsync(PRESENCE_REFRESH_MS * 3);
    expect(listCalls).toBe(1);
    expect(client.getState().conversations[id].presence_pushed).toBe(true);
  });
});
