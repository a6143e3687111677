-- The booking worker (issue 9): offers lapse and no-shows are marked by time,
-- not by reads. It finds its work through these two indexes.

-- When the worker marked the event's no-shows after its end (NULL until then).
ALTER TABLE events ADD COLUMN settled_at TEXT;
CREATE INDEX events_unsettled ON events (ends_at) WHERE settled_at IS NULL;

-- Offers waiting for an answer, by deadline.
CREATE INDEX bookings_offers_due ON bookings (offer_expires_at) WHERE status = 'offered';
