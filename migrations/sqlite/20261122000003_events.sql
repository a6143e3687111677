-- Events and bookings (issue 5). Capacity is enforced here, not in memory:
-- `confirmed` counts held seats and may never exceed `capacity`.

CREATE TABLE events (
    id                INTEGER PRIMARY KEY,          -- EventId: random 60-bit
    kind              TEXT NOT NULL CHECK (kind IN ('training', 'recuperation', 'matchmaking')),
    site_id           INTEGER REFERENCES sites (id),
    venue_name        TEXT,                         -- when not held at a site
    lat               REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),   -- WGS-84: the site's or the venue's
    lon               REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    title             TEXT NOT NULL,
    description       TEXT NOT NULL,
    starts_at         TEXT NOT NULL,
    ends_at           TEXT NOT NULL,
    capacity          INTEGER NOT NULL CHECK (capacity > 0),
    booking_opens_at  TEXT NOT NULL,
    booking_closes_at TEXT NOT NULL,
    cancel_deadline   TEXT NOT NULL,
    waitlist          INTEGER NOT NULL CHECK (waitlist IN (0, 1)),
    status            TEXT NOT NULL CHECK (status IN ('draft', 'published', 'cancelled', 'finished')),
    quotas            TEXT NOT NULL DEFAULT '[]',   -- JSON [{attribute, value, seats}]
    eligibility       TEXT NOT NULL DEFAULT '{}',   -- JSON Eligibility
    offer_hours       INTEGER,                      -- recuperation: a promoted person has this long to accept
    held              INTEGER NOT NULL DEFAULT 0,   -- seats held (confirmed, offered, checked in)
    version           INTEGER NOT NULL DEFAULT 1,
    created_by        INTEGER REFERENCES users (id),
    updated_at        TEXT NOT NULL,
    CHECK (held >= 0 AND held <= capacity)
) STRICT;
CREATE INDEX events_starts ON events (status, starts_at);

CREATE TABLE bookings (
    id               INTEGER PRIMARY KEY,           -- BookingId: random 60-bit
    event_id         INTEGER NOT NULL REFERENCES events (id),
    user_id          INTEGER NOT NULL REFERENCES users (id),
    status           TEXT NOT NULL CHECK (status IN ('confirmed', 'waitlisted', 'offered', 'cancelled', 'checked_in', 'no_show')),
    quota            TEXT,                          -- 'gender=female' when the person falls in a quota
    waitlist_seq     INTEGER,                       -- arrival order on the waitlist
    offer_expires_at TEXT,
    checked_in_at    TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
-- One active booking per person per event.
CREATE UNIQUE INDEX bookings_one_active ON bookings (event_id, user_id)
    WHERE status IN ('confirmed', 'waitlisted', 'offered', 'checked_in');
CREATE INDEX bookings_event ON bookings (event_id, status, waitlist_seq);
CREATE INDEX bookings_user ON bookings (user_id);

-- Every state change of a booking, with its time.
CREATE TABLE booking_log (
    booking_id INTEGER NOT NULL REFERENCES bookings (id),
    at         TEXT NOT NULL,
    status     TEXT NOT NULL,
    note       TEXT
) STRICT;
CREATE INDEX booking_log_booking ON booking_log (booking_id);

-- Replayable answers to requests carrying an Idempotency-Key, per user, for 24 h.
CREATE TABLE idempotency (
    user_id      INTEGER NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,                  -- unix seconds
    PRIMARY KEY (user_id, key)
) STRICT;
