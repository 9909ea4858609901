-- Inbox indexes: each side's conversations by newest activity.
-- Built CONCURRENTLY so a busy conversations table keeps taking writes; CONCURRENTLY cannot
-- run in a transaction, so this file runs statement by statement (migrate:no-transaction), and
-- the runner refuses to record it if any index it built is left INVALID by a failed build.
-- migrate:no-transaction
-- migrate:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_conversations_customer
    ON conversations (customer_id, last_message_at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_conversations_artist
    ON conversations (artist_id, last_message_at DESC, id DESC);
-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS idx_conversations_customer;
DROP INDEX CONCURRENTLY IF EXISTS idx_conversations_artist;
