-- Web Push (issue 12), as on SQLite: subscriptions, notification settings,
-- and deliveries per subscription (`target`; SMS rows have 0).

CREATE TABLE push_subscriptions (
    id         bigint PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id),
    endpoint   text NOT NULL UNIQUE,
    p256dh     bytea NOT NULL,
    auth       bytea NOT NULL,
    types      jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE notification_settings (
    user_id     bigint PRIMARY KEY REFERENCES users (id),
    muted_types jsonb NOT NULL DEFAULT '[]',
    quiet_from  text,
    quiet_to    text,
    updated_at  timestamptz NOT NULL
);

ALTER TABLE deliveries ADD COLUMN target bigint NOT NULL DEFAULT 0;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries ADD PRIMARY KEY (notification_id, channel, target);
