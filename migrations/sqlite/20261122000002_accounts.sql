-- Accounts, roles, site management (issue 4).

-- What site managers keep current beyond the opening hours.
ALTER TABLE sites ADD COLUMN status_reason TEXT;
ALTER TABLE sites ADD COLUMN reopens_at TEXT;                       -- RFC 3339, UTC
ALTER TABLE sites ADD COLUMN closures TEXT NOT NULL DEFAULT '[]';   -- JSON [{from, to, reason}]

-- People, by their normalised mainland mobile number (11 digits, no +86).
CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    phone           TEXT NOT NULL UNIQUE CHECK (length(phone) = 11),
    role            TEXT NOT NULL CHECK (role IN ('worker', 'site_manager', 'admin')),
    display_name    TEXT,
    gender          TEXT CHECK (gender IN ('male', 'female')),
    birth_year      INTEGER,
    marital_status  TEXT CHECK (marital_status IN ('single', 'married', 'divorced', 'widowed')),
    union_member_no TEXT,
    employer        TEXT,
    frontline       INTEGER CHECK (frontline IN (0, 1)),
    created_at      TEXT NOT NULL
) STRICT;

-- A site manager's scope.
CREATE TABLE user_sites (
    user_id INTEGER NOT NULL REFERENCES users (id),
    site_id INTEGER NOT NULL REFERENCES sites (id),
    PRIMARY KEY (user_id, site_id)
) STRICT, WITHOUT ROWID;

-- One live sign-in code per phone, stored hashed.
CREATE TABLE otp_codes (
    phone      TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,      -- unix seconds
    attempts   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Every code request, for rate limits per phone and per client address.
CREATE TABLE otp_requests (
    phone TEXT NOT NULL,
    ip    TEXT NOT NULL,
    at    INTEGER NOT NULL            -- unix seconds
) STRICT;
CREATE INDEX otp_requests_phone ON otp_requests (phone, at);
CREATE INDEX otp_requests_ip ON otp_requests (ip, at);

-- Bearer tokens, stored only as SHA-256 hashes.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    expires_at INTEGER NOT NULL,      -- unix seconds
    revoked    INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Who changed what on a site: old -> new per field, in the change's transaction.
CREATE TABLE site_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id INTEGER NOT NULL REFERENCES sites (id),
    user_id INTEGER REFERENCES users (id),
    version INTEGER NOT NULL,
    action  TEXT NOT NULL CHECK (action IN ('create', 'update', 'retire')),
    changes TEXT NOT NULL,            -- JSON {field: {old, new}}
    at      TEXT NOT NULL
) STRICT;
CREATE INDEX site_audit_site ON site_audit (site_id, id);

CREATE TABLE follows (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, site_id)
) STRICT, WITHOUT ROWID;
