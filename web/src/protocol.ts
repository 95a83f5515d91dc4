// The client contract (docs/openapi.yaml, docs/asyncapi.yaml) as TypeScript types.
// Ids are strings; times are milliseconds since the epoch; durations are seconds.

export interface Message {
  conversation_id: string;
  message_id: string;
  seq: number;
  sender_id: string;
  sender_device_id: string;
  client_msg_id: string;
  body: string;
  created_at: number;
  expires_at: number;
}

export interface Member {
  user_id: string;
  phone: string;
  // null means unknown (hidden by privacy, or not set), never "offline".
  display_name: string | null;
  role: "owner" | "admin" | "member" | null;
  online: boolean | null;
  last_seen_at: number | null;
  read_seq: number | null;
  delivered_seq: number | null;
}

export interface Conversation {
  id: string;
  kind: "direct" | "group";
  title: string | null;
  ttl_seconds: number;
  last_seq: number;
  read_seq: number;
  unread_count: number;
  last_message: Message | null;
  members: Member[];
  /** Someone I share no accepted conversation with started it (or added me): not accepted yet. */
  request: boolean;
  /** The members' `presence` frames come (a 1:1, or a group of at most the server's
   * PRESENCE_PUSH_MAX_MEMBERS); false for a bigger group, whose online dots only this list keeps
   * true. Absent from servers before it existed, which pushed presence everywhere. */
  presence_pushed?: boolean;
}

/** One page of `GET /conversations`, newest activity first; `next_cursor` null on the last. */
export interface ConversationList {
  server_time: number;
  conversations: Conversation[];
  next_cursor?: string | null;
}

export interface Settings {
  /** true: chats from people I share no accepted conversation with wait as requests. */
  message_requests: boolean;
  /** false: nobody sees my reads and I see nobody's. */
  read_receipts: boolean;
}

/** `GET /me`, `PATCH /me`. */
export interface Profile {
  id: string;
  phone: string;
  display_name: string | null;
  settings: Settings;
}

export type ProfileChange = Partial<Pick<Profile, "display_name"> & Settings>;

export interface Block {
  user_id: string;
  phone: string;
  display_name: string | null;
  blocked_at: number;
}

export interface SessionReply {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  user: { id: string; phone: string };
  device_id: string;
}

export interface Challenge {
  challenge_id: string;
  expires_in: number;
  resend_after: number;
}

export interface Ticket {
  ticket: string;
  url: string;
  expires_in: number;
}

export interface SyncEntry {
  conversation_id: string;
  last_seq: number;
  read_seq: number;
  unread_count: number;
  messages: Message[];
  has_more: boolean;
  first_seq: number;
}

export type ServerFrame =
  | ({ type: "message" } & Message)
  | {
      type: "sent";
      req?: string;
      conversation_id: string;
      client_msg_id: string;
      message_id: string;
      seq: number;
      created_at: number;
      expires_at: number;
      duplicate: boolean;
      expired?: boolean;
    }
  | { type: "receipt"; conversation_id: string; user_id: string; kind: "delivered" | "read"; seq: number }
  | { type: "unread"; conversation_id: string; count: number }
  | { type: "presence"; user_id: string; online: boolean; last_seen_at: number | null }
  | { type: "sync"; req?: string; server_time: number; conversations: SyncEntry[]; more_conversations?: boolean }
  | { type: "expired"; conversation_id: string; ranges: [number, number][]; up_to_seq: number; reason?: string }
  | { type: "pong"; req?: string; server_time: number }
  | { type: "error"; req?: string; code: string; message: string; retry_after_ms?: number }
  | { type: "conversation"; conversation: Conversation; change: "created" | "updated"; by: string }
  | {
      type: "member";
      conversation_id: string;
      user_id: string;
      change: "added" | "removed" | "left" | "role";
      role?: string;
      by: string;
    }
  /** `at`: when the typist's frame reached the server (ms). */
  | { type: "typing"; conversation_id: string; user_id: string; active: boolean; at: number };

/** One message of a batch `send`. */
export interface BatchEntry {
  client_msg_id: string;
  body: string;
}

/** `send` of one message, or of up to MAX_BATCH in one frame: stored in the order listed, in
 * one transaction, each answered by its own `sent` carrying the batch's `req`. */
export type SendFrame =
  | { action: "send"; req?: string; conversation_id: string; client_msg_id: string; body: string }
  | { action: "send"; req?: string; conversation_id: string; messages: BatchEntry[] };

export type ClientFrame =
  | SendFrame
  /** "I am typing here" (`active: false`: stopped); never stored, never queued. */
  | { action: "typing"; conversation_id: string; active: boolean }
  | { action: "ack"; req?: string; conversation_id: string; seq: number }
  | { action: "read"; req?: string; conversation_id: string; seq: number }
  | { action: "sync"; req?: string; cursors: Record<string, number>; limit?: number }
  | { action: "ping"; req?: string }
  | UnsendFrame;

/** Takes back one of my messages before it expires: everyone gets `expired`, reason "unsent". */
export interface UnsendFrame {
  action: "unsend";
  req?: string;
  conversation_id: string;
  seq: number;
}

/** API Gateway refuses a WebSocket frame over 32 KB; the server refuses a body over 16 KB. */
export const MAX_FRAME_BYTES = 32 * 1024;
export const MAX_BODY_BYTES = 16 * 1024;
/** The most messages one batch `send` may carry. */
export const MAX_BATCH = 20;
export const TTL_MIN_S = 10;
export const TTL_MAX_S = 30 * 24 * 3600;
