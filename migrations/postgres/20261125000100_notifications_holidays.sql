-- Notifications (issue 12) and the holiday calendar (issue 10), as on SQLite.

-- The in-app inbox.
CREATE TABLE notifications (
    id         bigint PRIMARY KEY,                 -- NotificationId: random 60-bit
    user_id    bigint NOT NULL REFERENCES users (id),
    type       text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    url        text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}',
    expires_at timestamptz,
    topic      text,
    created_at timestamptz NOT NULL,
    read_at    timestamptz
);
CREATE INDEX notifications_inbox ON notifications (user_id, created_at, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

-- The outbox: one row per notification and channel still to deliver (or done, with how).
CREATE TABLE deliveries (
    notification_id bigint NOT NULL REFERENCES notifications (id),
    channel         text NOT NULL CHECK (channel IN ('push', 'sms')),
    state           text NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    due_at          timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    claimed_until   timestamptz,
    last_error      text,
    done_at         timestamptz,
    PRIMARY KEY (notification_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';

-- Which reminder of an event went out.
CREATE TABLE event_reminders (
    event_id   bigint NOT NULL REFERENCES events (id),
    lead_hours integer NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (event_id, lead_hours)
);

-- China's holiday calendar: one row per known year; MAX(revision) moves whenever
-- a year is added or replaced, which is how every node notices a new calendar.
CREATE TABLE holiday_years (
    year        integer PRIMARY KEY CHECK (year BETWEEN 2000 AND 2100),
    source      text NOT NULL DEFAULT '',
    revision    bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE holiday_days (
    date  date PRIMARY KEY,
    year  integer NOT NULL REFERENCES holiday_years (year) ON DELETE CASCADE
          CHECK (extract(year FROM date) = year),
    kind  text NOT NULL CHECK (kind IN ('holiday', 'makeup_workday')),
    name  text NOT NULL
);
CREATE INDEX holiday_days_year ON holiday_days (year);
