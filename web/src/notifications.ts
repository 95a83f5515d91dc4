// Desktop notifications for messages that arrive while nobody looks at the tab: the
// Notifications API from the open tab (no service worker), permission asked for only when the
// person clicks "Turn on notifications", previews on or off per browser (localStorage).

import type { Message } from "./protocol";
import { type ChatState, conversationName, memberName } from "./store";

export interface NotificationText {
  title: string;
  body: string;
  conversationId: string;
}

export interface NotifyContext {
  /** The tab is visible and has focus: the person sees the message arrive. */
  looking: boolean;
  /** Off: a notification says only "New message" (no name, no text). */
  previews: boolean;
}

const PREVIEW_CHARS = 140;
const PREFERENCES_KEY = "ephemera.notifications";

/** Whether a message that just arrived notifies, and with what words. Only while nobody looks
 * at the tab; never for my own (written on another device), a blocked sender's, one in a
 * message request (requests wait quietly in their list, as the big messengers keep them: a
 * stranger cannot put words on my screen) or one already expired. */
export function notificationFor(
  state: ChatState, message: Message, context: NotifyContext, serverTime: number,
): NotificationText | null {
  if (context.looking) return null;
  if (message.sender_id === state.me || message.sender_id in state.blocked) return null;
  const conversation = state.conversations[message.conversation_id];
  if (!conversation || conversation.request || message.expires_at <= serverTime) return null;
  const conversationId = conversation.id;
  if (!context.previews) return { title: "New message", body: "", conversationId };
  const sender = conversation.members.find((m) => m.user_id === message.sender_id);
  const who = sender ? memberName(sender) : "Someone";
  const title = conversation.kind === "group" ? `${who} in ${conversationName(state, conversation)}` : who;
  return { title, body: clip(message.body), conversationId };
}

function clip(text: string): string {
  const chars = [...text];
  return chars.length <= PREVIEW_CHARS ? text : `${chars.slice(0, PREVIEW_CHARS - 1).join("")}…`;
}

export type NotificationPermissionState = NotificationPermission | "unsupported";

/** What the chat client and the settings screen need of notifications (a fake in unit tests). */
export interface Notifier {
  /** A live `message` frame has been applied to `state`: show it if it should notify. */
  messageArrived(state: ChatState, message: Message, serverTime: number): void;
  readonly permission: NotificationPermissionState;
  /** Only from a click: browsers ignore (or penalise) a request without a user gesture. */
  requestPermission(): Promise<NotificationPermissionState>;
  readonly previews: boolean;
  setPreviews(on: boolean): void;
  /** Called with the conversation of a notification the person clicked (the tab has focus). */
  onOpen: ((conversationId: string) => void) | null;
}

export class DesktopNotifier implements Notifier {
  onOpen: ((conversationId: string) => void) | null = null;

  get permission(): NotificationPermissionState {
    return typeof Notification === "undefined" ? "unsupported" : Notification.permission;
  }

  async requestPermission(): Promise<NotificationPermissionState> {
    if (typeof Notification === "undefined") return "unsupported";
    return Notification.requestPermission();
  }

  get previews(): boolean {
    try {
      const saved = JSON.parse(localStorage.getItem(PREFERENCES_KEY) ?? "{}") as { previews?: unknown };
      return saved.previews !== false;
    } catch {
      return true;
    }
  }

  setPreviews(on: boolean): void {
    localStorage.setItem(PREFERENCES_KEY, JSON.stringify({ previews: on }));
  }

  messageArrived(state: ChatState, message: Message, serverTime: number): void {
    if (this.permission !== "granted") return;
    const looking = document.visibilityState === "visible" && document.hasFocus();
    const text = notificationFor(state, message, { looking, previews: this.previews }, serverTime);
    if (!text) return;
    // one notification per chat: a newer message replaces the one before (same tag)
    const note = new Notification(text.title, { body: text.body, tag: text.conversationId });
    note.onclick = () => {
      window.focus();
      this.onOpen?.(text.conversationId);
      note.close();
    };
  }
}
