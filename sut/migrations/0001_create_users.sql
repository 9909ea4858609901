-- Users are owned by the platform's auth service; this table is a projection upserted
-- from tokens and by the seeder. Nothing requires a participant to have a row here.
-- migrate:up
CREATE TABLE users (
    id           BIGINT PRIMARY KEY,
    role         TEXT NOT NULL CHECK (role IN ('customer', 'artist')),
    display_name TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- migrate:down
DROP TABLE users;
