// The REST API: JSON in and out, the access token on every call, one refresh (rotation) when
// it has expired, and the protocol's errors as ApiError.

import type {
  Block, Challenge, Conversation, ConversationList, Message, Profile, ProfileChange, SessionReply, Ticket,
} from "./protocol";
import { type StoredSession, saveSession, sessionFromReply } from "./session";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  get retryAfterS(): number | undefined {
    const value = this.details.retry_after_s;
    return typeof value === "number" ? value : undefined;
  }
}

/** Where a history page starts: after a seq, or before one. */
export type HistoryFrom = { after: number } | { before: number };

export class Api {
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<() => void>();

  constructor(
    private readonly baseUrl: string,
    private session: StoredSession | null,
  ) {}

  // --- the signed-in device (React reads it with useSyncExternalStore) -------------------

  readonly currentSession = (): StoredSession | null => this.session;

  readonly onSessionChange = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private setSession(session: StoredSession | null): void {
    this.session = session;
    saveSession(session);
    this.listeners.forEach((listener) => listener());
  }

  // --- signing in -------------------------------------------------------------------------

  requestCode(phone: string): Promise<Challenge> {
    return this.call("POST", "/auth/otp", { phone }, false);
  }

  async verifyCode(challengeId: string, code: string, deviceName: string): Promise<void> {
    const reply = await this.call<SessionReply>(
      "POST", "/auth/verify", { challenge_id: challengeId, code, device_name: deviceName }, false);
    this.signedOutNotice = null;
    this.setSession(sessionFromReply(reply));
  }

  /** Revokes this device on the server (closing its sockets) and forgets it here either way. */
  async logout(): Promise<void> {
    try {
      await this.call("POST", "/auth/logout");
    } finally {
      this.setSession(null);
    }
  }

  /** Local stage only: the codes the console SMS sender "sent" to a phone, newest first. */
  async devOutbox(phone: string): Promise<{ code: string; sent_at: number }[]> {
    const reply = await this.call<{ messages: { code: string; sent_at: number }[] }>(
      "GET", `/dev/outbox?phone=${encodeURIComponent(phone)}`, undefined, false);
    return reply.messages;
  }

  // --- the rest ---------------------------------------------------------------------------

  ticket(): Promise<Ticket> {
    return this.call("POST", "/ws/ticket");
  }

  /** One page of my conversations, newest activity first; pass the previous page's `next_cursor`. */
  conversations(cursor?: string | null, limit = 200): Promise<ConversationList> {
    const query = `?limit=${limit}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
    return this.call("GET", `/conversations${query}`);
  }

  createConversation(members: string[], title?: string, ttlSeconds?: number): Promise<Conversation> {
    return this.call("POST", "/conversations", { members, title: title || undefined, ttl_seconds: ttlSeconds });
  }

  updateConversation(id: string, fields: { title?: string; ttl_seconds?: number }): Promise<Conversation> {
    return this.call("PATCH", `/conversations/${encodeURIComponent(id)}`, fields);
  }

  acceptRequest(id: string): Promise<Conversation> {
    return this.call("POST", `/conversations/${encodeURIComponent(id)}/accept`);
  }

  /** Leaves a request; `block` blocks whoever started it too. */
  declineRequest(id: string, block: boolean): Promise<void> {
    return this.call("POST", `/conversations/${encodeURIComponent(id)}/decline`, { block });
  }

  profile(): Promise<Profile> {
    return this.call("GET", "/me");
  }

  updateProfile(change: ProfileChange): Promise<Profile> {
    return this.call("PATCH", "/me", change);
  }

  async blocks(): Promise<Block[]> {
    return (await this.call<{ blocks: Block[] }>("GET", "/blocks")).blocks;
  }

  block(userId: string): Promise<Block> {
    return this.call("POST", "/blocks", { user_id: userId });
  }

  unblock(userId: string): Promise<void> {
    return this.call("DELETE", `/blocks/${encodeURIComponent(userId)}`);
  }

  /** A page of unexpired messages, ascending: those after a seq (a number, or `{after}`), or
   * the newest before one (`{before}`, scrolling back); `has_more`: more remain that way. */
  history(id: string, from: number | HistoryFrom, limit = 200): Promise<{ messages: Message[]; has_more: boolean }> {
    const where = typeof from === "number" ? `after_seq=${from}`
      : "before" in from ? `before_seq=${from.before}` : `after_seq=${from.after}`;
    return this.call("GET", `/conversations/${encodeURIComponent(id)}/messages?${where}&limit=${limit}`);
  }

  // --- the account: deletion with a texted code, and export -------------------------------

  /** Why the device was last signed out, for the sign-in screen ("Your account was deleted"). */
  signedOutNotice: string | null = null;

  /** Texts a code to my phone for `deleteAccount` (as for login: `resend_after` applies). */
  deleteChallenge(): Promise<Challenge> {
    return this.call("POST", "/me/delete-challenge");
  }

  /** Deletes my account for good; then this device is signed out here too (the server has
   * revoked it). A wrong code is not retried after a token refresh: that would spend an attempt. */
  async deleteAccount(challengeId: string, code: string): Promise<void> {
    const body = { challenge_id: challengeId, code };
    let response = await this.send("DELETE", "/me", body, true);
    if (response.status === 401 && !(await refusesTheCode(response.clone())) && (await this.refresh())) {
      response = await this.send("DELETE", "/me", body, true);
    }
    await this.read<void>(response);
    this.signedOutNotice = "Your account was deleted.";
    this.setSession(null);
  }

  /** Everything the server stores about me, as it sends it (`GET /me/export`). */
  exportData(): Promise<unknown> {
    return this.call("GET", "/me/export");
  }

  /** Owner and admins of a group: adds these phones (a phone with no account becomes pending). */
  addMembers(id: string, members: string[]): Promise<Conversation> {
    return this.call("POST", `/conversations/${encodeURIComponent(id)}/members`, { members });
  }

  /** An admin removes someone; anyone removes themself (leaving the group). */
  removeMember(id: string, userId: string): Promise<void> {
    return this.call("DELETE", `/conversations/${encodeURIComponent(id)}/members/${encodeURIComponent(userId)}`);
  }

  /** The owner makes a member an admin, or an admin a plain member. */
  setMemberRole(id: string, userId: string, role: "admin" | "member"): Promise<unknown> {
    return this.call("PATCH", `/conversations/${encodeURIComponent(id)}/members/${encodeURIComponent(userId)}`, { role });
  }

  // --- the transport ----------------------------------------------------------------------

  private async call<T>(method: string, path: string, body?: unknown, authenticated = true): Promise<T> {
    const response = await this.send(method, path, body, authenticated);
    if (response.status === 401 && authenticated && (await this.refresh())) {
      return this.read<T>(await this.send(method, path, body, authenticated));
    }
    return this.read<T>(response);
  }

  private send(method: string, path: string, body: unknown, authenticated: boolean): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = this.session?.accessToken;
    if (authenticated && token) headers.Authorization = `Bearer ${token}`;
    return fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  private async read<T>(response: Response): Promise<T> {
    const parsed = parseJson(await response.text());
    if (response.ok) return parsed as T;
    const error = parsed?.error ?? {};
    const retryAfter = Number(response.headers.get("Retry-After"));
    throw new ApiError(response.status, error.code ?? "internal", error.message ?? response.statusText, {
      ...error,
      ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retry_after_s: retryAfter } : {}),
    });
  }

  /** One refresh at a time; a refused refresh signs the device out. */
  private refresh(): Promise<boolean> {
    this.refreshing ??= this.rotate().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async rotate(): Promise<boolean> {
    const session = this.session;
    if (!session) return false;
    const response = await this.send("POST", "/auth/refresh", { refresh_token: session.refreshToken }, false);
    if (!response.ok) {
      if (response.status === 401) this.setSession(null);
      return false;
    }
    this.setSession(sessionFromReply((await response.json()) as SessionReply));
    return true;
  }
}

/** A 401 about the code (it carries `attempts_left`), not about an expired access token. */
async function refusesTheCode(response: Response): Promise<boolean> {
  const error = parseJson(await response.text())?.error;
  return typeof error?.attempts_left === "number";
}

/** A gateway's own error page is not JSON: it becomes a plain ApiError, not a crash. */
function parseJson(text: string): any {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The group membership calls (issue 22), for what takes only part of the Api. */
export type GroupApi = Partial<Pick<Api, "addMembers" | "removeMember" | "setMemberRole">>;
