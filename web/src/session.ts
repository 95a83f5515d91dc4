// The signed-in device, kept in sessionStorage: each tab is its own device, so two tabs never
// race to rotate one refresh token (a re-used refresh token revokes the device), and two
// windows of one browser can be two people.

import type { SessionReply } from "./protocol";
import type { PendingSend } from "./store";

export interface StoredSession {
  accessToken: string;
  refreshToken: string;
  userId: string;
  phone: string;
  deviceId: string;
}

const SESSION_KEY = "ephemera.session";
const OUTBOX_KEY = "ephemera.outbox";
const PANE_KEY = "ephemera.pane";

export function sessionFromReply(reply: SessionReply): StoredSession {
  return {
    accessToken: reply.access_token,
    refreshToken: reply.refresh_token,
    userId: reply.user.id,
    phone: reply.user.phone,
    deviceId: reply.device_id,
  };
}

export function loadSession(): StoredSession | null {
  return readJson<StoredSession>(SESSION_KEY);
}

export function saveSession(session: StoredSession | null): void {
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else {
    sessionStorage.removeItem(SESSION_KEY);
    sessionStorage.removeItem(OUTBOX_KEY);
    sessionStorage.removeItem(PANE_KEY);
  }
}

/** Unconfirmed sends survive a reload: they go again with the same client_msg_id. */
export function loadOutbox(): PendingSend[] {
  return readJson<PendingSend[]>(OUTBOX_KEY) ?? [];
}

export function saveOutbox(outbox: PendingSend[]): void {
  sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox));
}

/** What the right-hand (on a phone: the only) pane shows; a reload opens it again. */
export type OpenPane = { kind: "chat"; id: string } | { kind: "settings" } | { kind: "new" };

export function loadOpenPane(): OpenPane | null {
  const pane = readJson<OpenPane>(PANE_KEY);
  if (pane?.kind === "chat" && typeof pane.id === "string") return pane;
  if (pane?.kind === "settings" || pane?.kind === "new") return { kind: pane.kind };
  return null;
}

export function saveOpenPane(pane: OpenPane | null): void {
  if (pane) sessionStorage.setItem(PANE_KEY, JSON.stringify(pane));
  else sessionStorage.removeItem(PANE_KEY);
}

function readJson<T>(key: string): T | null {
  try {
    const raw = sessionStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}
