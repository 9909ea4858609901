-- One conversation per (customer, artist) pair; the unique index is the get-or-create key.
-- migrate:up
CREATE TABLE conversations (
    id              BIGSERIAL PRIMARY KEY,
    customer_id     BIGINT NOT NULL,
    artist_id       BIGINT NOT NULL,
    booking_id      BIGINT,
    last_message_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (customer_id <> artist_id)
);
CREATE UNIQUE INDEX idx_conversations_lookup ON conversations (customer_id, artist_id);
-- migrate:down
DROP TABLE conversations;
