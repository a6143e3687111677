-- Event reminders (issue 12): which reminder of an event went out, so each
-- goes once whichever node's worker sends it.
CREATE TABLE event_reminders (
    event_id   INTEGER NOT NULL REFERENCES events (id),
    lead_hours INTEGER NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (event_id, lead_hours)
) STRICT, WITHOUT ROWID;
