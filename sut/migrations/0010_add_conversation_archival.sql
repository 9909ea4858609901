-- Archival: a conversation is active or archived; the inbox defaults to active ones.
-- The partial indexes serve the active inbox of each side and the unread-count sum:
-- idx_conversations_customer_active for customers, idx_conversations_active for artists.
-- The column is added with a constant default (no table rewrite on PostgreSQL 11+); the
-- indexes are built CONCURRENTLY, so this file runs outside a transaction.
-- migrate:no-transaction
-- migrate:up
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS archived_at TIMESTAMPTZ;
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_status_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_status_check
    CHECK (status IN ('active', 'archived')) NOT VALID;
ALTER TABLE conversations VALIDATE CONSTRAINT conversations_status_check;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_conversations_customer_active
    ON conversations (customer_id, last_message_at DESC, id DESC) WHERE status = 'active';
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_conversations_active
    ON conversations (artist_id, last_message_at DESC, id DESC) WHERE status = 'active';
-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS idx_conversations_active;
DROP INDEX CONCURRENTLY IF EXISTS idx_conversations_customer_active;
ALTER TABLE conversations DROP COLUMN IF EXISTS archived_at;
ALTER TABLE conversations DROP COLUMN IF EXISTS status;
