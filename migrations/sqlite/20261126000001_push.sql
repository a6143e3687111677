-- Web Push (issue 12): browsers' subscriptions, each person's notification
-- settings, and deliveries per subscription (a push row's `target` is its
-- subscription; SMS rows have target 0).

CREATE TABLE push_subscriptions (
    id         INTEGER PRIMARY KEY,                -- SubscriptionId: random 60-bit
    user_id    INTEGER NOT NULL REFERENCES users (id),
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     BLOB NOT NULL,                      -- 65-byte uncompressed P-256 point
    auth       BLOB NOT NULL,                      -- 16-byte secret
    types      TEXT,                               -- JSON array of types pushed here; NULL: all
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE notification_settings (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id),
    muted_types TEXT NOT NULL DEFAULT '[]',        -- JSON array
    quiet_from  TEXT,                              -- HH:MM China time, with quiet_to
    quiet_to    TEXT,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE deliveries_v2 (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    channel         TEXT NOT NULL CHECK (channel IN ('push', 'sms')),
    target          INTEGER NOT NULL DEFAULT 0,    -- push: the subscription's id (no FK: kept after it goes)
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    due_at          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claimed_until   TEXT,
    last_error      TEXT,
    done_at         TEXT,
    PRIMARY KEY (notification_id, channel, target)
) STRICT;
INSERT INTO deliveries_v2 (notification_id, channel, target, state, due_at, attempts, claimed_until, last_error, done_at)
    SELECT notification_id, channel, 0, state, due_at, attempts, claimed_until, last_error, done_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';
