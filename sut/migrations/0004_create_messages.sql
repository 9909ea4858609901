-- Messages; ids come from one sequence, and sends lock their conversation row before taking
-- an id, so within a conversation ids increase in commit order.
-- migrate:up
CREATE TABLE messages (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'image', 'system')),
    body            TEXT,
    image_key       TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'image') = (image_key IS NOT NULL)),
    CHECK (kind = 'image' OR body IS NOT NULL)
);
CREATE INDEX idx_messages_conversation ON messages (conversation_id, id);
-- migrate:down
DROP TABLE messages;
