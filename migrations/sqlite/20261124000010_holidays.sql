-- China's holiday calendar, kept current by operators (`yizhan admin holidays import`).
-- One row per known year; `revision` is the calendar's revision when the year was last
-- written, so MAX(revision) changes whenever a year is added or replaced: that is how
-- every node's follower notices a new calendar.
CREATE TABLE holiday_years (
    year        INTEGER PRIMARY KEY CHECK (year BETWEEN 2000 AND 2100),
    source      TEXT NOT NULL DEFAULT '',
    revision    INTEGER NOT NULL,
    updated_at  TEXT NOT NULL                           -- RFC 3339, UTC
) STRICT;

-- The year's public holidays (PH) and make-up workdays (调休上班日).
CREATE TABLE holiday_days (
    date  TEXT PRIMARY KEY CHECK (length(date) = 10),  -- YYYY-MM-DD in Asia/Shanghai
    year  INTEGER NOT NULL REFERENCES holiday_years (year) ON DELETE CASCADE
          CHECK (CAST(substr(date, 1, 4) AS INTEGER) = year),
    kind  TEXT NOT NULL CHECK (kind IN ('holiday', 'makeup_workday')),
    name  TEXT NOT NULL
) STRICT;

CREATE INDEX holiday_days_year ON holiday_days (year);
