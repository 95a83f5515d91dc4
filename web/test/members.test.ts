// Group membership as a client sees it: `member` and `conversation` frames keep the members and
// the conversation current and leave a line in the chat; my own changes go over REST.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { GroupApi } from "../src/api";
import { type ChatApi, ChatClient } from "../src/client";
import type { Conversation, Member, Message, ServerFrame } from "../src/protocol";
import {
  type ChatState, conversationName, conversationsByActivity, initialState, memberChanged, noticeText, noticesOf,
  peerDeleted, reduce, timeline,
} from "../src/store";
import { FakeLink } from "./fakeLink";

const ME = "u-me";
const ALICE = "u-alice";
const BOB = "u-bob";
const NOW = 1_800_000_000_000;

function member(user_id: string, display_name: string | null, role: Member["role"] = "member"): Member {
  return { user_id, phone: `+1415555${user_id.length}00`, display_name, role, online: false, last_seen_at: null, read_seq: 0, delivered_seq: 0 };
}

function group(fields: Partial<Conversation> = {}): Conversation {
  return {
    id: "g1", kind: "group", title: "Climbers", ttl_seconds: 86400, last_seq: 0, read_seq: 0, unread_count: 0,
    last_message: null, request: false,
    members: [member(ME, "Me", "admin"), member(ALICE, "Alice", "owner"), member(BOB, "Bob")],
    ...fields,
  };
}

function loaded(...conversations: Conversation[]): ChatState {
  return reduce(initialState(ME), {
    type: "conversations_loaded", list: { server_time: NOW, conversations: conversations.length ? conversations : [group()] }, now: NOW,
  });
}

function frames(state: ChatState, ...incoming: ServerFrame[]): ChatState {
  return incoming.reduce((s, frame) => reduce(s, { type: "frame", frame, now: NOW }), state);
}

function lines(state: ChatState, id = "g1"): string[] {
  const c = state.conversations[id];
  return noticesOf(state, c).map((n) => noticeText(state, c, n));
}

function message(seq: number): Message {
  return {
    conversation_id: "g1", message_id: `m${seq}`, seq, sender_id: ALICE, sender_device_id: "d", client_msg_id: `x-${seq}`,
    body: `body ${seq}`, created_at: NOW + seq, expires_at: NOW + 60_000,
  };
}

const memberFrame = (user_id: string, change: "added" | "removed" | "left" | "role", by: string, role?: string) =>
  memberChanged("g1", user_id, change, by, role);

describe("member frames", () => {
  it("someone added is named in the line once the list brings them", () => {
    let state = frames(loaded(), memberFrame("u-carol", "added", ALICE));
    expect(lines(state)).toEqual(["Alice added someone"]);
    const carol = member("u-carol", "Carol");
    state = reduce(state, { type: "conversation_loaded", conversation: group({ members: [...group().members, carol] }) });
    expect(lines(state)).toEqual(["Alice added Carol"]);
    expect(state.conversations.g1.members.map((m) => m.user_id)).toContain("u-carol");
  });

  it("someone removed leaves the members, and the line still names them", () => {
    const state = frames(loaded(), memberFrame(BOB, "removed", ALICE));
    expect(state.conversations.g1.members.map((m) => m.user_id)).toEqual([ME, ALICE]);
    expect(lines(state)).toEqual(["Alice removed Bob"]);
  });

  it("someone who left leaves the members", () => {
    const state = frames(loaded(), memberFrame(BOB, "left", BOB));
    expect(state.conversations.g1.members.map((m) => m.user_id)).toEqual([ME, ALICE]);
    expect(lines(state)).toEqual(["Bob left"]);
  });

  it("a role change updates the member and says who did it", () => {
    const state = frames(loaded(), memberFrame(BOB, "role", ALICE, "admin"), memberFrame(ME, "role", ALICE, "member"));
    expect(state.conversations.g1.members.find((m) => m.user_id === BOB)?.role).toBe("admin");
    expect(state.conversations.g1.members.find((m) => m.user_id === ME)?.role).toBe("member");
    expect(lines(state)).toEqual(["Alice made Bob an admin", "Alice made you a member"]);
  });

  it("an owner who leaves hands the group over: the new owner is named", () => {
    const state = frames(loaded(), memberFrame(ALICE, "left", ALICE), memberFrame(BOB, "role", ALICE, "owner"));
    expect(state.conversations.g1.members.find((m) => m.user_id === BOB)?.role).toBe("owner");
    expect(lines(state)).toEqual(["Alice left", "Bob is now the owner"]);
  });

  it("removing me drops the whole chat from my list", () => {
    const state = frames(loaded(), memberFrame(BOB, "role", ALICE, "admin"), memberFrame(ME, "removed", ALICE));
    expect(state.conversations.g1).toBeUndefined();
    expect(state.notices.g1).toBeUndefined();
  });

  it("my call's answer and the frame about it are one line, whichever comes first", () => {
    const mine = (frame: ReturnType<typeof memberFrame>) => (s: ChatState) => reduce(s, { type: "my_change", frame, now: NOW });
    const answerFirst = frames(mine(memberFrame(BOB, "removed", ME))(loaded()), memberFrame(BOB, "removed", ME));
    expect(lines(answerFirst)).toEqual(["You removed Bob"]);
    const frameFirst = mine(memberFrame(BOB, "role", ME, "admin"))(frames(loaded(), memberFrame(BOB, "role", ME, "admin")));
    expect(lines(frameFirst)).toEqual(["You made Bob an admin"]);
  });

  it("the same change made again is a line again", () => {
    const state = frames(loaded(), memberFrame(BOB, "role", ALICE, "admin"), memberFrame(BOB, "role", ALICE, "member"),
      memberFrame(BOB, "role", ALICE, "admin"));
    expect(lines(state)).toEqual(["Alice made Bob an admin", "Alice made Bob a member", "Alice made Bob an admin"]);
  });

  it("a frame for a conversation I do not hold changes nothing", () => {
    const state = loaded();
    expect(frames(state, memberChanged("elsewhere", BOB, "left", BOB))).toBe(state);
  });
});

describe("conversation frames", () => {
  const updated = (fields: Partial<Conversation>, by = ALICE): ServerFrame =>
    ({ type: "conversation", conversation: group(fields), change: "updated", by });

  it("a new TTL is the picker's value at once, with a line saying who set it", () => {
    const state = frames(loaded(), updated({ ttl_seconds: 10 }));
    expect(state.conversations.g1.ttl_seconds).toBe(10);
    expect(lines(state)).toEqual(["Alice set messages to expire after 10 seconds"]);
  });

  it("a new title shows at once, with a line", () => {
    const state = frames(loaded(), updated({ title: "Boulderers" }));
    expect(conversationName(state, state.conversations.g1)).toBe("Boulderers");
    expect(lines(state)).toEqual(["Alice renamed the group to Boulderers"]);
  });

  it("TTLs are told as the picker says them", () => {
    const state = frames(loaded(), updated({ ttl_seconds: 3600 }), updated({ ttl_seconds: 7 * 86400 }),
      updated({ ttl_seconds: 30 * 86400 }), updated({ ttl_seconds: 90 }));
    expect(lines(state)).toEqual([
      "Alice set messages to expire after 1 hour", "Alice set messages to expire after 1 week",
      "Alice set messages to expire after 30 days", "Alice set messages to expire after 90 seconds",
    ]);
  });

  it("a conversation created with me is in my list at once", () => {
    const state = frames(loaded(), { type: "conversation", conversation: group({ id: "g2", title: "New" }), change: "created", by: ALICE });
    expect(conversationsByActivity(state).map((c) => c.id).sort()).toEqual(["g1", "g2"]);
    expect(lines(state, "g2")).toEqual([]);
  });
});

describe("where the lines go", () => {
  it("a notice comes after the message it followed and before later ones", () => {
    let state = frames(loaded(), { type: "message", ...message(1) });
    state = frames(state, memberFrame(BOB, "left", BOB), { type: "message", ...message(2) });
    const c = state.conversations.g1;
    const order = timeline(c.messages, noticesOf(state, c)).map((item) =>
      item.kind === "message" ? `m${item.message.seq}` : noticeText(state, c, item.notice));
    expect(order).toEqual(["m1", "Bob left", "m2"]);
  });
});

describe("a deleted account", () => {
  it("a direct chat whose other person is gone is 'Deleted account'", () => {
    const direct = group({ id: "d1", kind: "direct", title: null, members: [member(ME, "Me", null)] });
    const state = loaded(direct);
    expect(peerDeleted(state, state.conversations.d1)).toBe(true);
    expect(conversationName(state, state.conversations.d1)).toBe("Deleted account");
  });

  it("a direct chat with its other person is not", () => {
    const direct = group({ id: "d1", kind: "direct", title: null, members: [member(ME, "Me", null), member(BOB, "Bob", null)] });
    const state = loaded(direct);
    expect(peerDeleted(state, state.conversations.d1)).toBe(false);
    expect(conversationName(state, state.conversations.d1)).toBe("Bob");
  });
});

describe("the client's membership calls", () => {
  let link: FakeLink;
  let client: ChatClient;
  let calls: string[];

  beforeEach(async () => {
    vi.useFakeTimers();
    calls = [];
    const api: ChatApi & GroupApi = {
      conversations: async () => ({ server_time: Date.now(), conversations: [group()], next_cursor: null }),
      createConversation: async () => group(),
      updateConversation: async (_id, fields) => group(fields),
      acceptRequest: async () => group(),
      declineRequest: async () => {},
      profile: async () => ({ id: ME, phone: "+1", display_name: null, settings: { message_requests: true, read_receipts: true } }),
      updateProfile: async () => {
        throw new Error("not in these tests");
      },
      blocks: async () => [],
      block: async () => {
        throw new Error("not in these tests");
      },
      unblock: async () => {},
      history: async () => ({ messages: [], has_more: false }),
      addMembers: async (id, phones) => {
        calls.push(`add ${id} ${phones.join(",")}`);
        return group({ members: [...group().members, member("u-carol", "Carol")] });
      },
      removeMember: async (id, userId) => {
        calls.push(`remove ${id} ${userId}`);
      },
      setMemberRole: async (id, userId, role) => {
        calls.push(`role ${id} ${userId} ${role}`);
        return {};
      },
    };
    client = new ChatClient({ api, openLink: (events) => (link = new FakeLink(events)), persistOutbox: () => {} }, ME, []);
    client.start();
    await vi.advanceTimersByTimeAsync(0);
  });

  afterEach(() => {
    client.stop();
    vi.useRealTimers();
  });

  it("leaving asks to remove me, and the chat leaves my list", async () => {
    await client.leaveGroup("g1");
    expect(calls).toEqual([`remove g1 ${ME}`]);
    expect(client.getState().conversations.g1).toBeUndefined();
  });

  it("adding people posts their phones and names them in a line", async () => {
    await client.addMembers("g1", ["+14155550199"]);
    expect(calls).toEqual(["add g1 +14155550199"]);
    expect(lines(client.getState())).toEqual(["You added Carol"]);
  });

  it("removing and promoting show at once, before any frame", async () => {
    await client.setMemberRole("g1", BOB, "admin");
    await client.removeMember("g1", BOB);
    expect(calls).toEqual([`role g1 ${BOB} admin`, `remove g1 ${BOB}`]);
    expect(lines(client.getState())).toEqual(["You made Bob an admin", "You removed Bob"]);
    expect(client.getState().conversations.g1.members.map((m) => m.user_id)).toEqual([ME, ALICE]);
  });

  it("the frame about my own change, pushed back to me, adds no second line", async () => {
    link.open();
    await client.removeMember("g1", BOB);
    link.receive(memberChanged("g1", BOB, "removed", ME));
    expect(lines(client.getState())).toEqual(["You removed Bob"]);
  });

  it("my own TTL change shows the line too", async () => {
    await client.updateConversation("g1", { ttl_seconds: 60 });
    expect(client.getState().conversations.g1.ttl_seconds).toBe(60);
    expect(lines(client.getState())).toEqual(["You set messages to expire after 1 minute"]);
  });

  it("a frame removing me, pushed while I look, drops the chat", () => {
    link.open();
    link.receive(memberChanged("g1", ME, "removed", ALICE));
    expect(client.getState().conversations.g1).toBeUndefined();
  });
});
