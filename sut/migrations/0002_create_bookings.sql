-- A customer's booking with an artist (mirrored from the booking service).
-- migrate:up
CREATE TABLE bookings (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    artist_id   BIGINT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'confirmed', 'completed', 'cancelled')),
    starts_at   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_bookings_pair ON bookings (customer_id, artist_id);
-- migrate:down
DROP TABLE bookings;
