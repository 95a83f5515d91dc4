-- Presence after a silent drop (issue 20): a socket can die without a close (lid shut, Wi-Fi
-- lost) and API Gateway only notices after its 10-minute idle limit. The presence sweep marks a
-- connection `silent` once it has shown no sign of life for PRESENCE_SILENT_AFTER_S, and
-- clears the mark when it shows life again. A user is shown online while any of their
-- connections is unmarked. Only the sweep flips the mark, under the user's row lock, so every
-- change of what others were told is announced exactly once. The row itself stays until the
-- idle sweep deletes it, as before.
ALTER TABLE connections ADD COLUMN silent SMALLINT NOT NULL DEFAULT 0;

-- The sweep's two questions, each a range on this index: unmarked connections gone quiet,
-- and marked ones that have shown life again.
CREATE INDEX connections_silent_last_seen ON connections (silent, last_seen_at);
