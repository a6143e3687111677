-- The waitlist's length and the last arrival number given, kept on the event
-- row (issue 24): a batch of bookings reads them in one row instead of
-- counting the event's bookings, which grew with every booking of a crowd.
-- The triggers keep them true for every write of `bookings`; no code sets them.
-- They run once per statement (over its transition tables), so a batch's
-- multi-row insert updates the event row once, not once per booking. Every
-- path that writes bookings has locked their event first (`lock_event`), so
-- the update takes no lock it does not hold.
ALTER TABLE events
    ADD COLUMN waitlisted integer NOT NULL DEFAULT 0 CONSTRAINT waitlisted CHECK (waitlisted >= 0),
    ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;

UPDATE events e SET waitlisted = s.n, last_seq = s.m
FROM (SELECT event_id, count(*) FILTER (WHERE status = 'waitlisted') AS n,
             coalesce(max(waitlist_seq), 0) AS m
      FROM bookings GROUP BY event_id) s
WHERE e.id = s.event_id;

-- Apply per-event changes: `n` to the length, `m` as a candidate last number.
CREATE FUNCTION bookings_tail_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE events e SET waitlisted = e.waitlisted + d.n, last_seq = greatest(e.last_seq, d.m)
        FROM (SELECT event_id, count(*) FILTER (WHERE status = 'waitlisted') AS n,
                     coalesce(max(waitlist_seq), 0) AS m
              FROM new_rows GROUP BY event_id) d
        WHERE e.id = d.event_id AND (d.n <> 0 OR d.m > e.last_seq);
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE events e SET waitlisted = e.waitlisted + d.n, last_seq = greatest(e.last_seq, d.m)
        FROM (SELECT event_id, sum(n)::integer AS n, max(m) AS m FROM (
                  SELECT event_id, 1 AS n, coalesce(waitlist_seq, 0) AS m FROM new_rows
                  WHERE status = 'waitlisted'
                  UNION ALL
                  SELECT event_id, 0, coalesce(waitlist_seq, 0) FROM new_rows
                  WHERE status <> 'waitlisted'
                  UNION ALL
                  SELECT event_id, -1, 0 FROM old_rows WHERE status = 'waitlisted') x
              GROUP BY event_id) d
        WHERE e.id = d.event_id AND (d.n <> 0 OR d.m > e.last_seq);
    ELSE
        UPDATE events e SET waitlisted = e.waitlisted - d.n
        FROM (SELECT event_id, count(*) AS n FROM old_rows
              WHERE status = 'waitlisted' GROUP BY event_id) d
        WHERE e.id = d.event_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_tail_insert AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bookings_tail_moved();
CREATE TRIGGER bookings_tail_update AFTER UPDATE ON bookings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bookings_tail_moved();
CREATE TRIGGER bookings_tail_delete AFTER DELETE ON bookings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bookings_tail_moved();
