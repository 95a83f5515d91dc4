-- Authentication: rotating refresh tokens, single-use WebSocket tickets, the local SMS outbox.

-- Refresh tokens are random and stored only as SHA-256. A rotated token keeps its row
-- (rotated_at set) so that presenting it again is recognised as theft and revokes the device;
-- an unknown token is just refused, so nobody can revoke a device by guessing.
CREATE TABLE refresh_tokens (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    device_id VARCHAR(26) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT NULL
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (device_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- A ticket's jti is inserted when the ticket opens a socket: the primary key makes the second
-- use fail atomically. Rows can go once the ticket itself has expired.
CREATE TABLE consumed_tickets (
    jti VARCHAR(26) NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX consumed_tickets_expires ON consumed_tickets (expires_at);

-- What the console SMS sender "sent" (stage local only; the sender refuses elsewhere).
CREATE TABLE sms_outbox (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    phone VARCHAR(16) NOT NULL,
    code VARCHAR(16) NOT NULL,
    text VARCHAR(320) NOT NULL,
    sent_at BIGINT NOT NULL
);
CREATE INDEX sms_outbox_phone ON sms_outbox (phone, sent_at);
