-- Conversation management (issue 22). The last member out deletes a conversation with its
-- messages and their idempotency keys at once; account deletion removes a user's keys. Both
-- find those keys by conversation, not by their (sender_id, client_msg_id) primary key.
CREATE INDEX idempotency_keys_conversation ON idempotency_keys (conversation_id);
