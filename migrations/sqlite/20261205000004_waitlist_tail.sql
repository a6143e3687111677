-- The waitlist's length and the last arrival number given, kept on the event
-- row (issue 24): a batch of bookings reads them in one row instead of
-- counting the event's bookings, which grew with every booking of a crowd.
-- The triggers keep them true for every write of `bookings`; no code sets them.
ALTER TABLE events ADD COLUMN waitlisted INTEGER NOT NULL DEFAULT 0 CHECK (waitlisted >= 0);
ALTER TABLE events ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;

UPDATE events SET
    waitlisted = (SELECT count(*) FROM bookings b WHERE b.event_id = events.id AND b.status = 'waitlisted'),
    last_seq = (SELECT coalesce(max(waitlist_seq), 0) FROM bookings b WHERE b.event_id = events.id);

CREATE TRIGGER bookings_tail_insert AFTER INSERT ON bookings
WHEN NEW.waitlist_seq IS NOT NULL OR NEW.status = 'waitlisted'
BEGIN
    UPDATE events SET
        waitlisted = waitlisted + (NEW.status = 'waitlisted'),
        last_seq = max(last_seq, coalesce(NEW.waitlist_seq, 0))
    WHERE id = NEW.event_id;
END;

CREATE TRIGGER bookings_tail_update AFTER UPDATE OF status, waitlist_seq, event_id ON bookings
WHEN (OLD.status = 'waitlisted') <> (NEW.status = 'waitlisted')
  OR NEW.waitlist_seq IS NOT OLD.waitlist_seq OR NEW.event_id <> OLD.event_id
BEGIN
    UPDATE events SET waitlisted = waitlisted - (OLD.status = 'waitlisted') WHERE id = OLD.event_id;
    UPDATE events SET
        waitlisted = waitlisted + (NEW.status = 'waitlisted'),
        last_seq = max(last_seq, coalesce(NEW.waitlist_seq, 0))
    WHERE id = NEW.event_id;
END;

CREATE TRIGGER bookings_tail_delete AFTER DELETE ON bookings
WHEN OLD.status = 'waitlisted'
BEGIN
    UPDATE events SET waitlisted = waitlisted - 1 WHERE id = OLD.event_id;
END;
