-- Sites: the registry. Coordinates are WGS-84 degrees; the API converts at its edge.
CREATE TABLE sites (
    id            INTEGER PRIMARY KEY,            -- SiteId: random 63-bit, opaque outside
    ext_ref       TEXT UNIQUE,                    -- the importing system's reference (GeoJSON properties.ref)
    kind          TEXT NOT NULL CHECK (kind IN ('outdoor_station', 'mother_room', 'union_station', 'craftsman_studio')),
    name          TEXT NOT NULL,
    address       TEXT NOT NULL,
    adcode        TEXT NOT NULL CHECK (length(adcode) = 6),
    lat           REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    amenities     INTEGER NOT NULL,               -- bitmask in Amenity::ALL order
    opening_hours TEXT NOT NULL,
    phone         TEXT,
    photos        TEXT NOT NULL DEFAULT '[]',     -- JSON array of URLs
    status        TEXT NOT NULL CHECK (status IN ('open', 'temporarily_closed', 'retired')),
    version       INTEGER NOT NULL DEFAULT 1,
    updated_at    TEXT NOT NULL                   -- RFC 3339, UTC
) STRICT;

-- The change feed: one row per change to a site, written in the same transaction
-- as the change. seq is monotonic (AUTOINCREMENT never reuses a value).
CREATE TABLE site_changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id  INTEGER NOT NULL REFERENCES sites (id),
    op       TEXT NOT NULL CHECK (op IN ('upsert', 'retire')),
    version  INTEGER NOT NULL,
    at       TEXT NOT NULL
) STRICT;

CREATE INDEX site_changes_site ON site_changes (site_id);
