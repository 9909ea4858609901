-- The idempotency key of a send: unique per sender, whatever the conversation.
-- migrate:up
ALTER TABLE messages ADD COLUMN client_message_id TEXT NOT NULL DEFAULT gen_random_uuid()::text;
ALTER TABLE messages ALTER COLUMN client_message_id DROP DEFAULT;
CREATE UNIQUE INDEX idx_messages_client_id ON messages (sender_id, client_message_id);
-- migrate:down
DROP INDEX idx_messages_client_id;
ALTER TABLE messages DROP COLUMN client_message_id;
