-- The first schema. Written in the subset MySQL 8, MariaDB 10.11 and SQLite 3.40 share:
-- no AUTO_INCREMENT (ids are ULIDs made by the application), no foreign keys (every hot
-- query is keyed by conversation_id or user_id so the data can be sharded on them later),
-- times as BIGINT milliseconds since the epoch (UTC), hashes as lowercase hex.
-- On MySQL the migration runner first sets the database default to utf8mb4 / utf8mb4_bin,
-- so ids, phones and client_msg_id compare byte for byte, as they do in SQLite.

-- A person, known by an E.164 phone. `activated_at` is NULL while the user is pending:
-- someone added them to a conversation before they ever logged in.
CREATE TABLE users (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    phone VARCHAR(16) NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT NULL,
    last_seen_at BIGINT NULL
);
CREATE UNIQUE INDEX users_phone ON users (phone);

-- A logged-in device. `token_version` is in every access token and checked on every request,
-- so bumping it (or setting revoked_at) revokes at once.
CREATE TABLE devices (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    user_id VARCHAR(26) NOT NULL,
    name VARCHAR(64) NOT NULL,
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    revoked_at BIGINT NULL
);
CREATE INDEX devices_user ON devices (user_id);

-- One-time login codes, stored only as a keyed hash. `phone_key` is an HMAC of the phone,
-- so limits keyed on it survive account deletion without keeping the number.
CREATE TABLE otp_challenges (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    phone VARCHAR(16) NOT NULL,
    phone_key CHAR(64) NOT NULL,
    code_hash CHAR(64) NOT NULL,
    attempts_left SMALLINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT NULL
);
CREATE INDEX otp_challenges_phone_key ON otp_challenges (phone_key);
CREATE INDEX otp_challenges_expires ON otp_challenges (expires_at);

-- `last_seq` is the per-conversation message counter: a send takes last_seq + 1 under the
-- row's lock. `direct_key` ("<smaller user id>:<larger user id>") de-duplicates 1:1 chats;
-- it is NULL for groups, and both engines allow many NULLs under a unique index.
CREATE TABLE conversations (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    kind VARCHAR(8) NOT NULL,
    direct_key VARCHAR(53) NULL,
    title VARCHAR(200) NULL,
    ttl_seconds INTEGER NOT NULL DEFAULT 86400,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_by VARCHAR(26) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX conversations_direct_key ON conversations (direct_key);

-- Membership with the member's cursors. `joined_seq` is last_seq when they joined: a member
-- never gets messages from before. The (user_id) index lists "my conversations".
CREATE TABLE participants (
    conversation_id VARCHAR(26) NOT NULL,
    user_id VARCHAR(26) NOT NULL,
    role VARCHAR(8) NOT NULL,
    joined_seq BIGINT NOT NULL DEFAULT 0,
    read_seq BIGINT NOT NULL DEFAULT 0,
    delivered_seq BIGINT NOT NULL DEFAULT 0,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_user ON participants (user_id);

-- Messages live until expires_at; every read filters on it and the expiry engine deletes
-- by its index in short batches. (conversation_id, seq) is unique: ordering and paging.
CREATE TABLE messages (
    id VARCHAR(26) NOT NULL PRIMARY KEY,
    conversation_id VARCHAR(26) NOT NULL,
    seq BIGINT NOT NULL,
    sender_id VARCHAR(26) NOT NULL,
    sender_device_id VARCHAR(26) NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);
CREATE INDEX messages_expires ON messages (expires_at);

-- Idempotency keys outlive their message: a retry after expiry still gets its original
-- `sent` reply. Kept until max(24 h, the message's expiry); no body, only its hash.
CREATE TABLE idempotency_keys (
    sender_id VARCHAR(26) NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    conversation_id VARCHAR(26) NOT NULL,
    message_id VARCHAR(26) NOT NULL,
    seq BIGINT NOT NULL,
    body_hash CHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    message_expires_at BIGINT NOT NULL,
    keep_until BIGINT NOT NULL,
    PRIMARY KEY (sender_id, client_msg_id)
);
CREATE INDEX idempotency_keys_keep_until ON idempotency_keys (keep_until);

-- One row per live WebSocket. API Gateway connection ids are case-sensitive base64-ish
-- strings, hence the binary collation the runner sets on MySQL.
CREATE TABLE connections (
    id VARCHAR(128) NOT NULL PRIMARY KEY,
    user_id VARCHAR(26) NOT NULL,
    device_id VARCHAR(26) NOT NULL,
    connected_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX connections_user ON connections (user_id);
CREATE INDEX connections_device ON connections (device_id);
CREATE INDEX connections_last_seen ON connections (last_seen_at);
CREATE INDEX connections_connected ON connections (connected_at);

-- Sliding-window rate-limit counters, one row per (bucket, window). Shared by every Lambda.
CREATE TABLE rate_limit_windows (
    bucket VARCHAR(191) NOT NULL,
    window_start BIGINT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_windows_expires ON rate_limit_windows (expires_at);
