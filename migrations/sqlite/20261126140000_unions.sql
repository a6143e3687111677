-- no-transaction
-- Unions (基层工会 and their federations), membership in them (issue 14), and
-- union admins as a role. Rebuilding `users` for its new role CHECK needs
-- foreign keys off, which SQLite allows only outside a transaction: this
-- migration opens its own (SQLite's documented way to change a table).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE users_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    phone           TEXT NOT NULL UNIQUE CHECK (length(phone) = 11),
    role            TEXT NOT NULL CHECK (role IN ('worker', 'site_manager', 'union_admin', 'admin')),
    display_name    TEXT,
    gender          TEXT CHECK (gender IN ('male', 'female')),
    birth_year      INTEGER,
    marital_status  TEXT CHECK (marital_status IN ('single', 'married', 'divorced', 'widowed')),
    union_member_no TEXT,             -- self-declared; grants nothing (memberships do)
    employer        TEXT,
    frontline       INTEGER CHECK (frontline IN (0, 1)),
    created_at      TEXT NOT NULL
) STRICT;
INSERT INTO users_new (id, phone, role, display_name, gender, birth_year, marital_status,
                       union_member_no, employer, frontline, created_at)
SELECT id, phone, role, display_name, gender, birth_year, marital_status,
       union_member_no, employer, frontline, created_at FROM users;
-- Keep AUTOINCREMENT's promise: ids of deleted users are never handed out again.
DELETE FROM sqlite_sequence WHERE name = 'users_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'users_new', seq FROM sqlite_sequence WHERE name = 'users';
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE unions (
    id           INTEGER PRIMARY KEY,                 -- UnionId: random 60-bit
    name         TEXT NOT NULL,
    adcode       TEXT NOT NULL CHECK (length(adcode) = 6),
    parent_id    INTEGER REFERENCES unions (id),      -- the federation above
    lat          REAL CHECK (lat BETWEEN -90 AND 90), -- WGS-84, optional
    lon          REAL CHECK (lon BETWEEN -180 AND 180),
    join_policy  TEXT NOT NULL CHECK (join_policy IN ('auto', 'review')),
    code_version INTEGER NOT NULL DEFAULT 1 CHECK (code_version >= 1), -- rotation bumps it
    created_at   TEXT NOT NULL,
    CHECK ((lat IS NULL) = (lon IS NULL))
) STRICT;
CREATE INDEX unions_parent ON unions (parent_id);
CREATE INDEX unions_adcode ON unions (adcode);

-- A union admin's scope (the unions below them follow from the tree).
CREATE TABLE user_unions (
    user_id  INTEGER NOT NULL REFERENCES users (id),
    union_id INTEGER NOT NULL REFERENCES unions (id),
    PRIMARY KEY (user_id, union_id)
) STRICT, WITHOUT ROWID;

-- One row per membership or application: a person's history is theirs.
CREATE TABLE memberships (
    id               INTEGER PRIMARY KEY,             -- MembershipId: random 60-bit
    user_id          INTEGER NOT NULL REFERENCES users (id),
    union_id         INTEGER NOT NULL REFERENCES unions (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'active', 'rejected', 'transferred', 'withdrawn')),
    member_no        TEXT UNIQUE,
    applied_at       TEXT NOT NULL,
    decided_at       TEXT,
    decided_by       INTEGER REFERENCES users (id),
    reason           TEXT,
    activated_at     TEXT,
    ended_at         TEXT,
    transferred_from INTEGER REFERENCES memberships (id),
    CHECK ((status IN ('active', 'transferred')) = (member_no IS NOT NULL AND activated_at IS NOT NULL))
) STRICT;
-- At most one active membership and one pending application per person.
CREATE UNIQUE INDEX memberships_one_active ON memberships (user_id) WHERE status = 'active';
CREATE UNIQUE INDEX memberships_one_pending ON memberships (user_id) WHERE status = 'pending';
CREATE INDEX memberships_union ON memberships (union_id, status);

-- The last member number given per adcode (numbers are adcode-prefixed).
CREATE TABLE member_no_counters (
    adcode TEXT PRIMARY KEY,
    last   INTEGER NOT NULL CHECK (last >= 0)
) STRICT;

-- The union that runs a site.
ALTER TABLE sites ADD COLUMN union_id INTEGER REFERENCES unions (id);

COMMIT;
PRAGMA foreign_keys = ON;
