-- Data migration: one conversation per (customer, artist) pair that has bookings.
-- A pair with several bookings gets exactly one conversation, tied to its earliest booking
-- (DISTINCT ON the pair), and pairs that already have a conversation are left alone
-- (ON CONFLICT on the pair's unique index), so running it again changes nothing.
-- migrate:up
INSERT INTO conversations (customer_id, artist_id, booking_id, last_message_at, created_at)
SELECT DISTINCT ON (customer_id, artist_id)
       customer_id, artist_id, id, created_at, created_at
FROM bookings
WHERE customer_id <> artist_id
ORDER BY customer_id, artist_id, created_at, id
ON CONFLICT (customer_id, artist_id) DO NOTHING;
-- migrate:down
-- Conversations made from bookings cannot be told apart from ones users started once they
-- hold messages; the down step removes only those still empty and tied to a booking.
DELETE FROM conversations c
WHERE c.booking_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id);
