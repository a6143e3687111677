-- Notifications (issue 12): the in-app inbox, and the outbox of deliveries
-- per channel, both written in the same transaction as their cause.

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,               -- NotificationId: random 60-bit
    user_id    INTEGER NOT NULL REFERENCES users (id),
    type       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    url        TEXT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}',        -- JSON
    expires_at TEXT,                              -- pushing it is pointless after this
    topic      TEXT,
    created_at TEXT NOT NULL,
    read_at    TEXT
) STRICT;
CREATE INDEX notifications_inbox ON notifications (user_id, created_at, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

-- One row per notification and channel still to deliver (or done, with how).
CREATE TABLE deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    channel         TEXT NOT NULL CHECK (channel IN ('push', 'sms')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    due_at          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claimed_until   TEXT,                         -- a worker's lease; past it, others may take it
    last_error      TEXT,
    done_at         TEXT,
    PRIMARY KEY (notification_id, channel)
) STRICT;
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';
