-- Consent, blocks, settings and bounded lists (the safety issue; PROTOCOL v1.1).

-- A profile and two privacy settings per user. `display_name` is shown only to people who
-- share an accepted conversation with the user; NULL until they set one.
ALTER TABLE users ADD COLUMN display_name VARCHAR(64) NULL;
ALTER TABLE users ADD COLUMN message_requests SMALLINT NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN read_receipts SMALLINT NOT NULL DEFAULT 1;

-- A member's consent to a conversation: 'accepted', 'request' (a stranger started it or
-- added them; nothing about them is revealed until they accept) or 'declined' (they left it:
-- it is no longer theirs, yet the others see them as before, so a decline is not a signal).
-- Conversations that existed before consent keep their members as accepted.
ALTER TABLE participants ADD COLUMN consent VARCHAR(8) NOT NULL DEFAULT 'accepted';
-- "Do these two share an accepted conversation?" reads (user_id, consent) pairs.
CREATE INDEX participants_user_consent ON participants (user_id, consent, conversation_id);

-- Latest activity (the newest message, else creation): `GET /conversations` pages by it.
ALTER TABLE conversations ADD COLUMN activity_at BIGINT NOT NULL DEFAULT 0;
UPDATE conversations SET activity_at = updated_at;

-- Unread counts and the oldest available seq read this index alone (no message rows).
CREATE INDEX messages_unread ON messages (conversation_id, seq, expires_at, sender_id);

-- Blocks are keyed by an HMAC of the blocked phone (`blocked_key`), so a block survives the
-- blocked user deleting the account and signing up again, while no row keeps the number.
-- `blocked_user_id` is that phone's current user, re-linked when the phone signs up anew.
CREATE TABLE blocks (
    blocker_id VARCHAR(26) NOT NULL,
    blocked_key CHAR(64) NOT NULL,
    blocked_user_id VARCHAR(26) NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_key)
);
CREATE INDEX blocks_blocked_user ON blocks (blocked_user_id);
CREATE INDEX blocks_blocked_key ON blocks (blocked_key);

-- Bodies no longer leave unsalted hashes behind: the idempotency check now stores an HMAC
-- with a derived key. The plain SHA-256 values already stored are erased (a short body could
-- be recovered from them); a retry of such a send is matched on its conversation alone.
UPDATE idempotency_keys SET body_hash = '';
DELETE FROM rate_limit_windows WHERE bucket LIKE 'send_same_body:%';
