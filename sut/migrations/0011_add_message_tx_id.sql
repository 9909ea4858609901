-- The id of the transaction that stored each message, for the socket.io `sync` cursor:
-- message ids come from a sequence and are not commit-ordered across conversations, so the cursor
-- also remembers which transactions were still running when it was issued, and the next sync
-- re-reads their messages. Added without a table rewrite: old rows keep NULL (long committed).
-- migrate:no-transaction
-- migrate:up
ALTER TABLE messages ADD COLUMN IF NOT EXISTS tx_id xid8;
ALTER TABLE messages ALTER COLUMN tx_id SET DEFAULT pg_current_xact_id();
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_messages_tx ON messages (tx_id) WHERE tx_id IS NOT NULL;
-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS idx_messages_tx;
ALTER TABLE messages DROP COLUMN IF EXISTS tx_id;
