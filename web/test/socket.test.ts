import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Api, ApiError } from "../src/api";
import type { Ticket } from "../src/protocol";
import { DEFAULT_SOCKET_TIMING, FrameTooLarge, RealtimeSocket, type SocketStatus } from "../src/socket";

/** Just enough of the browser's WebSocket for the test to play the server. */
class FakeWebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static made: FakeWebSocket[] = [];
  readyState = FakeWebSocket.CONNECTING;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeWebSocket.made.push(this);
  }
  send(text: string): void {
    this.sent.push(text);
  }
  close(): void {
    this.readyState = FakeWebSocket.CLOSED;
  }
  accept(): void {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.();
  }
  reply(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

let socket: RealtimeSocket;
let tickets: (() => Promise<Ticket>)[];
let statuses: SocketStatus[];
let opened: number;
/** What the link listens to on `window` (online, offline), so a test can fire them. */
let windowListeners: Map<string, () => void>;

/** Starts a link whose first ticket requests get these replies (then good tickets). */
function startLink(...ticketReplies: (() => Promise<Ticket>)[]): void {
  tickets = ticketReplies;
  const api = { ticket: () => (tickets.shift() ?? goodTicket)() } as unknown as Api;
  socket = new RealtimeSocket(api, {
    opened: () => (opened += 1),
    frame: () => {},
    status: (status) => statuses.push(status),
  }, DEFAULT_SOCKET_TIMING);
  socket.start();
}

/** A started link whose first socket the server accepted and answered on. */
async function liveLink(): Promise<FakeWebSocket> {
  startLink();
  await vi.advanceTimersByTimeAsync(0); // the ticket arrives
  const first = FakeWebSocket.made[0];
  first.accept();
  first.reply({ type: "pong", server_time: Date.now() });
  first.sent = []; // the ping that asked for that answer
  return first;
}

function actions(socket: FakeWebSocket): string[] {
  return socket.sent.map((t) => JSON.parse(t).action);
}

const goodTicket = async (): Promise<Ticket> => ({ ticket: `t${FakeWebSocket.made.length}`, url: "ws://stack/ws", expires_in: 60 });

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.made = [];
  statuses = [];
  opened = 0;
  windowListeners = new Map();
  const events = { addEventListener: () => {}, removeEventListener: () => {} };
  const windowEvents = {
    addEventListener: (name: string, listener: () => void) => windowListeners.set(name, listener),
    removeEventListener: (name: string) => windowListeners.delete(name),
  };
  vi.stubGlobal("WebSocket", FakeWebSocket);
  vi.stubGlobal("window", Object.assign(globalThis, windowEvents));
  vi.stubGlobal("document", { ...events, visibilityState: "visible" });
  vi.stubGlobal("navigator", { onLine: true });
});

afterEach(() => {
  socket.stop();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("the live link", () => {
  it("opens with a fresh single-use ticket in the URL, and is online once the server answers on it", async () => {
    startLink();
    await vi.advanceTimersByTimeAsync(0);
    const first = FakeWebSocket.made[0];
    expect(first.url).toBe("ws://stack/ws?ticket=t0");
    first.accept();
    expect(socket.isOpen).toBe(true);
    expect(statuses).toEqual(["connecting"]); // open, but nothing has answered yet
    expect(actions(first)).toEqual(["ping"]); // nobody else sent anything: it asks for an answer
    first.reply({ type: "pong", server_time: Date.now() });
    expect(statuses).toEqual(["connecting", "online"]);
  });

  it("a new socket that answers nothing within 5 s is dead, and the link stays offline while it tries again", async () => {
    startLink();
    await vi.advanceTimersByTimeAsync(0);
    FakeWebSocket.made[0].accept(); // a path that opens sockets but carries no frame
    await vi.advanceTimersByTimeAsync(4_000);
    expect(statuses).toEqual(["connecting"]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(statuses).toEqual(["connecting", "offline"]);
    await vi.advanceTimersByTimeAsync(1_000); // the backoff
    expect(FakeWebSocket.made).toHaveLength(2);
    FakeWebSocket.made[1].accept();
    expect(statuses.at(-1)).toBe("offline"); // not "connecting" over and over
    FakeWebSocket.made[1].reply({ type: "pong", server_time: Date.now() });
    expect(statuses.at(-1)).toBe("online");
  });

  it("a ping unanswered for 5 s counts the link dead and opens a new one with a new ticket", async () => {
    const first = await liveLink();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(actions(first)).toEqual(["ping"]);
    await vi.advanceTimersByTimeAsync(4_500);
    expect(statuses.at(-1)).toBe("online");
    await vi.advanceTimersByTimeAsync(500); // no answer, and no close event either
    expect(statuses.at(-1)).toBe("offline");
    await vi.advanceTimersByTimeAsync(1_000); // the first backoff is under a second
    expect(FakeWebSocket.made).toHaveLength(2);
    expect(FakeWebSocket.made[1].url).toBe("ws://stack/ws?ticket=t1");
  });

  it("a probe pings a link quiet for 5 s and finds it dead within 5 s more", async () => {
    const first = await liveLink();
    socket.probe();
    expect(actions(first)).toEqual([]); // it just answered: known alive
    await vi.advanceTimersByTimeAsync(5_000);
    socket.probe();
    socket.probe();
    expect(actions(first)).toEqual(["ping"]); // one at a time
    await vi.advanceTimersByTimeAsync(5_000);
    expect(statuses.at(-1)).toBe("offline");
  });

  it("coming back to the tab or the window probes the link", async () => {
    const first = await liveLink();
    await vi.advanceTimersByTimeAsync(10_000);
    windowListeners.get("focus")?.();
    expect(actions(first)).toEqual(["ping"]);
    first.reply({ type: "pong", server_time: Date.now() });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(statuses.at(-1)).toBe("online");
  });

  it("the browser's offline event counts the link dead at once, and its online event reconnects at once", async () => {
    const first = await liveLink();
    vi.stubGlobal("navigator", { onLine: false });
    windowListeners.get("offline")?.();
    expect(socket.isOpen).toBe(false);
    expect(first.readyState).toBe(FakeWebSocket.CLOSED);
    expect(statuses.at(-1)).toBe("offline");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(FakeWebSocket.made).toHaveLength(1); // no network: no tries meanwhile

    vi.stubGlobal("navigator", { onLine: true });
    windowListeners.get("online")?.();
    expect(statuses.at(-1)).toBe("connecting");
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWebSocket.made).toHaveLength(2);
  });

  it("a link the client reports dead is replaced by a new one with a new ticket", async () => {
    await liveLink();
    socket.reportDead();
    expect(statuses.at(-1)).toBe("offline");
    await vi.advanceTimersByTimeAsync(15_000); // the backoff
    expect(FakeWebSocket.made).toHaveLength(2);
    expect(FakeWebSocket.made[1].url).toBe("ws://stack/ws?ticket=t1");
  });

  it("an idle link pings once a minute, no more", async () => {
    const first = await liveLink();
    for (let minute = 0; minute < 5; minute += 1) {
      await vi.advanceTimersByTimeAsync(60_000);
      first.reply({ type: "pong", server_time: Date.now() });
    }
    expect(actions(first)).toEqual(["ping", "ping", "ping", "ping", "ping"]);
  });

  it("a link busy with other frames still pings once a minute: only a ping keeps it alive on the server", async () => {
    const first = await liveLink();
    for (let second = 0; second < 60; second += 10) {
      await vi.advanceTimersByTimeAsync(10_000);
      socket.send({ action: "ack", conversation_id: "c", seq: second + 1 });
    }
    expect(actions(first).filter((a) => a === "ping")).toEqual(["ping"]);
  });

  it("any frame answers the ping: a live link is kept", async () => {
    const first = await liveLink();
    await vi.advanceTimersByTimeAsync(60_000);
    first.reply({ type: "pong", server_time: Date.now() });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeWebSocket.made).toHaveLength(1);
  });

  it("a socket the server says is not logged in is replaced by a new one with a new ticket", async () => {
    const first = await liveLink();
    first.reply({ type: "error", req: "sync", code: "unauthorized", message: "this connection is not logged in" });
    expect(socket.isOpen).toBe(false);
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.made).toHaveLength(2);
    expect(FakeWebSocket.made[1].url).toBe("ws://stack/ws?ticket=t1");
    FakeWebSocket.made[1].accept();
    expect(opened).toBe(2);
  });

  it("sockets refused again and again are replaced less and less often", async () => {
    const first = await liveLink();
    first.reply({ type: "error", code: "unauthorized", message: "not logged in" });
    await vi.advanceTimersByTimeAsync(250);
    FakeWebSocket.made[1].accept();
    FakeWebSocket.made[1].reply({ type: "error", code: "unauthorized", message: "not logged in" });
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.made).toHaveLength(2); // the second wait is longer (500 ms)
    await vi.advanceTimersByTimeAsync(300);
    expect(FakeWebSocket.made).toHaveLength(3);
  });

  it("a rate-limited ticket request waits Retry-After before the next try", async () => {
    const limited = async (): Promise<Ticket> => {
      throw new ApiError(429, "rate_limited", "slow down", { retry_after_s: 7 });
    };
    startLink(limited);
    await vi.advanceTimersByTimeAsync(6_900);
    expect(FakeWebSocket.made).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(FakeWebSocket.made).toHaveLength(1);
  });

  it("a refused ticket (signed out) stops trying", async () => {
    const signedOut = async (): Promise<Ticket> => {
      throw new ApiError(401, "unauthorized", "signed out");
    };
    startLink(signedOut);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.made).toHaveLength(0);
  });

  it("a frame over 32 KB is refused before it is sent", async () => {
    const first = await liveLink();
    // a body of characters JSON escapes (\u0001 is 6 bytes each) passes 16 KB of text but not 32 KB of frame
    expect(() => socket.send({ action: "send", conversation_id: "c", client_msg_id: "x".repeat(8), body: "\u0001".repeat(6_000) }))
      .toThrow(FrameTooLarge);
    expect(first.sent).toEqual([]);
  });
});
