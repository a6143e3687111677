-- WeChat (issue 25): mini-program sign-in, subscribe-message consents, and
-- the access token every node shares. Times are Unix milliseconds, as on
-- PostgreSQL, so that both backends run the same statements.

-- A secret with an expiry that every node uses (WeChat's access token), and
-- the lease that lets one node at a time fetch a new one.
CREATE TABLE shared_tokens (
    name           TEXT PRIMARY KEY,
    value          TEXT,                  -- NULL until first fetched
    expires_ms     bigint,
    lease_holder   TEXT,
    lease_until_ms bigint
);

-- A person's WeChat identity in the union's mini program: one openid each.
CREATE TABLE wechat_accounts (
    openid   TEXT PRIMARY KEY,
    unionid  TEXT,
    user_id  bigint NOT NULL UNIQUE REFERENCES users (id),
    bound_ms bigint NOT NULL
);

-- One-time subscribe-message consents a person has left, per template.
CREATE TABLE wechat_consents (
    user_id     bigint NOT NULL REFERENCES users (id),
    template_id TEXT NOT NULL,
    remaining   integer NOT NULL CHECK (remaining >= 0),
    updated_ms  bigint NOT NULL,
    PRIMARY KEY (user_id, template_id)
);
