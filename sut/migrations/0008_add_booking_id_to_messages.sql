-- A message may refer to a booking (a reschedule request, a confirmation).
-- migrate:up
ALTER TABLE messages ADD COLUMN booking_id BIGINT;
CREATE INDEX idx_messages_booking ON messages (booking_id) WHERE booking_id IS NOT NULL;
-- migrate:down
DROP INDEX idx_messages_booking;
ALTER TABLE messages DROP COLUMN booking_id;
