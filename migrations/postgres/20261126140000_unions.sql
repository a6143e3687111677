-- Unions (基层工会 and their federations), membership in them (issue 14), and
-- union admins as a role; mirrors migrations/sqlite/20261126140000_unions.sql.

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('worker', 'site_manager', 'union_admin', 'admin'));

CREATE TABLE unions (
    id           bigint PRIMARY KEY,                          -- UnionId: random 60-bit
    name         text NOT NULL,
    adcode       text NOT NULL CHECK (length(adcode) = 6),
    parent_id    bigint REFERENCES unions (id),               -- the federation above
    lat          double precision CHECK (lat BETWEEN -90 AND 90),   -- WGS-84, optional
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    join_policy  text NOT NULL CHECK (join_policy IN ('auto', 'review')),
    code_version integer NOT NULL DEFAULT 1 CHECK (code_version >= 1), -- rotation bumps it
    created_at   timestamptz NOT NULL,
    CHECK ((lat IS NULL) = (lon IS NULL))
);
CREATE INDEX unions_parent ON unions (parent_id);
CREATE INDEX unions_adcode ON unions (adcode);

-- A union admin's scope (the unions below them follow from the tree).
CREATE TABLE user_unions (
    user_id  bigint NOT NULL REFERENCES users (id),
    union_id bigint NOT NULL REFERENCES unions (id),
    PRIMARY KEY (user_id, union_id)
);

-- One row per membership or application: a person's history is theirs.
CREATE TABLE memberships (
    id               bigint PRIMARY KEY,                      -- MembershipId: random 60-bit
    user_id          bigint NOT NULL REFERENCES users (id),
    union_id         bigint NOT NULL REFERENCES unions (id),
    status           text NOT NULL CHECK (status IN ('pending', 'active', 'rejected', 'transferred', 'withdrawn')),
    member_no        text UNIQUE,
    applied_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    decided_by       bigint REFERENCES users (id),
    reason           text,
    activated_at     timestamptz,
    ended_at         timestamptz,
    transferred_from bigint REFERENCES memberships (id),
    CHECK ((status IN ('active', 'transferred')) = (member_no IS NOT NULL AND activated_at IS NOT NULL))
);
-- At most one active membership and one pending application per person.
CREATE UNIQUE INDEX memberships_one_active ON memberships (user_id) WHERE status = 'active';
CREATE UNIQUE INDEX memberships_one_pending ON memberships (user_id) WHERE status = 'pending';
CREATE INDEX memberships_union ON memberships (union_id, status);

-- The last member number given per adcode (numbers are adcode-prefixed).
CREATE TABLE member_no_counters (
    adcode text PRIMARY KEY,
    last   bigint NOT NULL CHECK (last >= 0)
);

-- The union that runs a site.
ALTER TABLE sites ADD COLUMN union_id bigint REFERENCES unions (id);
