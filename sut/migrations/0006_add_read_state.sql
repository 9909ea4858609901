-- Read state per side: the last message each participant has read, and the unread counters
-- the inbox shows (a participant's own messages never count as unread for them).
-- migrate:up
ALTER TABLE conversations
    ADD COLUMN unread_count_customer     INTEGER NOT NULL DEFAULT 0 CHECK (unread_count_customer >= 0),
    ADD COLUMN unread_count_artist       INTEGER NOT NULL DEFAULT 0 CHECK (unread_count_artist >= 0),
    ADD COLUMN last_read_id_customer     BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_read_id_artist       BIGINT NOT NULL DEFAULT 0;
-- migrate:down
ALTER TABLE conversations
    DROP COLUMN unread_count_customer,
    DROP COLUMN unread_count_artist,
    DROP COLUMN last_read_id_customer,
    DROP COLUMN last_read_id_artist;
