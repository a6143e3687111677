-- Subscribe messages go through the outbox like pushes and texts (issue 25):
-- `channel` may be 'wechat'. SQLite cannot change a CHECK, so the table is
-- made anew with the same columns, rows and indexes.
CREATE TABLE deliveries_new (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    channel         TEXT NOT NULL CHECK (channel IN ('push', 'sms', 'wechat')),
    target          INTEGER NOT NULL DEFAULT 0,    -- push: the subscription's id (no FK: kept after it goes)
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    due_at          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claimed_until   TEXT,
    last_error      TEXT,
    done_at         TEXT,
    provider_ref    TEXT,                          -- Aliyun BizId, Tencent SerialNo
    receipt         TEXT CHECK (receipt IN ('delivered', 'failed')),
    receipt_detail  TEXT,
    receipt_ms      INTEGER,
    PRIMARY KEY (notification_id, channel, target)
) STRICT;
INSERT INTO deliveries_new (notification_id, channel, target, state, due_at, attempts,
    claimed_until, last_error, done_at, provider_ref, receipt, receipt_detail, receipt_ms)
SELECT notification_id, channel, target, state, due_at, attempts,
    claimed_until, last_error, done_at, provider_ref, receipt, receipt_detail, receipt_ms
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'pending';
CREATE INDEX deliveries_provider_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;
