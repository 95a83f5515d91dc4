// The live connection, played by a test: it decides when the link is up, what arrives, and
// records what the client sent (every controller test uses this one).

import type { ClientFrame, SendFrame, ServerFrame } from "../src/protocol";
import type { Link, SocketEvents, SocketStatus } from "../src/socket";

export type SingleSend = Extract<SendFrame, { client_msg_id: string }>;

export class FakeLink implements Link {
  isOpen = false;
  sent: ClientFrame[] = [];
  probes = 0;
  reportedDead = 0;

  constructor(private readonly events: SocketEvents) {}

  start(): void {}

  stop(): void {
    this.isOpen = false;
  }

  send(frame: ClientFrame): boolean {
    if (this.isOpen) this.sent.push(frame);
    return this.isOpen;
  }

  probe(): void {
    this.probes += 1;
  }

  /** What a real link does when the client says it is dead: it drops the socket. */
  reportDead(): void {
    this.reportedDead += 1;
    this.isOpen = false;
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

  says(status: SocketStatus): void {
    this.events.status(status);
  }

  of<A extends ClientFrame["action"]>(action: A): Extract<ClientFrame, { action: A }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { action: A }> => f.action === action);
  }

  /** The send frames, each of one message (a test that expects no batch). */
  singles(): SingleSend[] {
    return this.of("send").map((frame) => {
      if (!("client_msg_id" in frame)) throw new Error("a batch where one message was expected");
      return frame;
    });
  }
}
