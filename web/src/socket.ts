// One live WebSocket to the server: a fresh single-use ticket for every connection, a
// heartbeat that notices a dead link, probes when the user is about to need the link, and
// reconnection with capped, jittered backoff.

import { type Api, ApiError } from "./api";
import { type ClientFrame, MAX_FRAME_BYTES, type ServerFrame } from "./protocol";

/** online: a socket is open and the server has answered on it; connecting: getting a ticket
 * or opening one after being online (or at start); offline: the link died, the browser says it
 * has no network, or the attempts since have not been answered yet. */
export type SocketStatus = "connecting" | "online" | "offline";

export interface SocketEvents {
  opened(): void;
  frame(frame: ServerFrame): void;
  status(status: SocketStatus): void;
}

export interface SocketTiming {
  /** One ping a minute: the server counts a socket silent for 75 s as gone. Every frame is a
   * paid invocation, so an idle link pings no more often than that. */
  pingEveryMs: number;
  /** A ping (or the first frame on a new socket) unanswered this long means the link is dead
   * even if the socket looks open. */
  pongTimeoutMs: number;
  /** A probe (the user types, comes back to the tab...) pings only a link heard from less
   * recently than this: a link that just answered is known alive. */
  probeQuietMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_SOCKET_TIMING: SocketTiming = {
  pingEveryMs: 60_000, pongTimeoutMs: 5_000, probeQuietMs: 5_000, maxBackoffMs: 15_000,
};

export class FrameTooLarge extends Error {}

/** What the chat client needs of a live connection (a fake one in unit tests). */
export interface Link {
  start(): void;
  stop(): void;
  readonly isOpen: boolean;
  /** false when not open: the caller keeps the frame for later. */
  send(frame: ClientFrame): boolean;
  /** The caller waited too long for an answer: the link is dead even if the socket looks open.
   * Drop it and open a new one. */
  reportDead(): void;
  /** The user is about to need the link (typing): a link quiet for a while is pinged now, so a
   * dead one shows within `pongTimeoutMs`, not at the next heartbeat. */
  probe(): void;
}

export class RealtimeSocket implements Link {
  private socket: WebSocket | null = null;
  private running = false;
  private failures = 0;
  /** Sockets in a row the server said were not logged in (`unauthorized` frames). */
  private refusals = 0;
  private reconnectTimer: number | undefined;
  private heartbeat: number | undefined;
  private awaitingSince: number | undefined;
  /** The current socket has been answered since it opened: it is online. */
  private answered = false;
  private lastHeardAt = 0;
  private lastSentAt = 0;
  /** Only a ping always refreshes the server's view of this socket (other frames at most every
   * 20 s), so the heartbeat counts from the last ping, whatever else went since. */
  private lastPingAt = 0;
  private fetchingTicket = false;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly api: Api,
    private readonly events: SocketEvents,
    private readonly timing: SocketTiming = DEFAULT_SOCKET_TIMING,
  ) {}

  start(): void {
    this.running = true;
    window.addEventListener("online", this.onNetworkBack);
    window.addEventListener("offline", this.onNetworkGone);
    window.addEventListener("focus", this.checkOnReturn);
    document.addEventListener("visibilitychange", this.checkOnReturn);
    void this.connect();
  }

  stop(): void {
    this.running = false;
    window.removeEventListener("online", this.onNetworkBack);
    window.removeEventListener("offline", this.onNetworkGone);
    window.removeEventListener("focus", this.checkOnReturn);
    document.removeEventListener("visibilitychange", this.checkOnReturn);
    window.clearTimeout(this.reconnectTimer);
    this.drop();
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if the socket is open; false if not (the caller keeps it for later). */
  send(frame: ClientFrame): boolean {
    const text = JSON.stringify(frame); // raw UTF-8, never \u escapes for ordinary text
    if (this.encoder.encode(text).length > MAX_FRAME_BYTES) throw new FrameTooLarge();
    if (!this.socket || !this.isOpen) return false;
    this.socket.send(text);
    this.lastSentAt = Date.now();
    return true;
  }

  probe(): void {
    if (this.awaitingSince !== undefined || Date.now() - this.lastHeardAt < this.timing.probeQuietMs) return;
    this.ping();
  }

  private async connect(): Promise<void> {
    if (!this.running) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      // no network: the `online` event brings the next try; this one only in case it never fires
      this.retryLater(this.timing.maxBackoffMs);
      return;
    }
    // after a failed try the link stays "offline" while it tries again: it is not coming back yet
    if (this.failures === 0) this.events.status("connecting");
    let url: string;
    this.fetchingTicket = true;
    try {
      const ticket = await this.api.ticket();
      url = `${ticket.url}?ticket=${encodeURIComponent(ticket.ticket)}`;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return; // signed out: the app shows the login
      const waitMs = error instanceof ApiError && error.retryAfterS ? error.retryAfterS * 1000 : undefined;
      this.retryLater(waitMs);
      return;
    } finally {
      this.fetchingTicket = false;
    }
    if (!this.running) return;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      // online once the server answers: an open socket over a dead path answers nothing
      const openedAt = Date.now();
      this.answered = false;
      this.awaitingSince = openedAt;
      this.startHeartbeat();
      this.events.opened();
      if (this.lastSentAt < openedAt) this.ping(); // the client sent nothing: ask for an answer
    };
    socket.onmessage = (event) => {
      this.awaitingSince = undefined;
      this.lastHeardAt = Date.now();
      if (!this.answered) {
        this.answered = true;
        this.failures = 0;
        this.events.status("online");
      }
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame;
      } catch {
        return; // not ours to handle: the server only sends JSON
      }
      this.events.frame(frame);
      if (frame.type === "error" && frame.code === "unauthorized") {
        // the server holds no login for this socket (swept, or lost at $connect): every frame on
        // it would be refused, so a new one, with a new ticket, waiting longer each time in a row
        this.refusals += 1;
        this.drop();
        this.retryLater(Math.min(this.timing.maxBackoffMs, 125 * 2 ** Math.min(this.refusals, 8)));
      } else if (frame.type !== "error") {
        this.refusals = 0;
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.drop();
      this.retryLater();
    };
  }

  private retryLater(waitMs?: number): void {
    if (!this.running) return;
    this.events.status("offline");
    this.failures += 1;
    const backoff = Math.min(this.timing.maxBackoffMs, 250 * 2 ** Math.min(this.failures, 8));
    const delay = waitMs ?? backoff / 2 + Math.random() * (backoff / 2);
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => void this.connect(), delay);
  }

  /** Forgets the current socket at once: a dead link's close event may take minutes. */
  private drop(): void {
    window.clearInterval(this.heartbeat);
    const socket = this.socket;
    this.socket = null;
    this.awaitingSince = undefined;
    this.answered = false;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      if (socket.readyState <= WebSocket.OPEN) socket.close();
    }
  }

  /** Pings every `pingEveryMs`; any frame counts as the answer. Unanswered
   * for `pongTimeoutMs`, the link is dead even if the socket still looks open: checked every
   * half second, so a dead link shows at most `pongTimeoutMs` + 0.5 s after the ping. */
  private startHeartbeat(): void {
    window.clearInterval(this.heartbeat);
    this.lastPingAt = Date.now();
    this.heartbeat = window.setInterval(() => {
      const now = Date.now();
      if (this.awaitingSince !== undefined && now - this.awaitingSince >= this.timing.pongTimeoutMs) {
        this.drop();
        this.retryLater(); // backing off: a path that swallows frames may open sockets all the same
      } else if (now - this.lastPingAt >= this.timing.pingEveryMs) {
        this.ping();
      }
    }, 500);
  }

  private ping(): void {
    if (!this.socket || !this.isOpen) return;
    this.awaitingSince ??= Date.now();
    this.socket.send(JSON.stringify({ action: "ping" }));
    this.lastSentAt = this.lastPingAt = Date.now();
  }

  readonly reportDead = (): void => {
    if (!this.running || this.socket === null) return; // no socket: already waiting to try again
    this.drop();
    this.retryLater();
  };

  /** The browser's `offline` event: no network means no link, whatever the socket says. */
  private readonly onNetworkGone = (): void => {
    if (!this.running) return;
    this.drop();
    this.retryLater(this.timing.maxBackoffMs); // the `online` event, in all likelihood, comes first
  };

  private readonly reconnectNow = (): void => {
    // a socket that exists is open or opening; a dropped one is null
    if (!this.running || this.socket !== null || this.fetchingTicket) return;
    window.clearTimeout(this.reconnectTimer);
    this.failures = 0;
    void this.connect();
  };

  /** The browser has a network again: a socket that survived is asked whether it still works,
   * and a dropped one is replaced at once. */
  private readonly onNetworkBack = (): void => {
    if (this.isOpen) this.probe();
    else this.reconnectNow();
  };

  /** The person is back (the tab shows, the window has focus): the link shown must be true. */
  private readonly checkOnReturn = (): void => {
    if (document.visibilityState !== "visible") return;
    if (this.isOpen) this.probe();
    else this.reconnectNow();
  };
}
