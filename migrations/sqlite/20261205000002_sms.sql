-- Texts through real SMS providers (issue 22): numbers that cannot be
-- texted, and what the provider said of each text (its id, its receipt).
-- Times here are Unix milliseconds, as on PostgreSQL, so that both backends
-- run the same statements.

CREATE TABLE sms_unreachable (
    phone    TEXT PRIMARY KEY,             -- 11 digits
    reason   TEXT NOT NULL CHECK (reason IN ('invalid_number', 'unsubscribed', 'blacklisted')),
    code     TEXT NOT NULL,                -- the provider's error code
    provider TEXT NOT NULL,
    since_ms INTEGER NOT NULL
) STRICT;

ALTER TABLE deliveries ADD COLUMN provider_ref TEXT;       -- Aliyun BizId, Tencent SerialNo
ALTER TABLE deliveries ADD COLUMN receipt TEXT CHECK (receipt IN ('delivered', 'failed'));
ALTER TABLE deliveries ADD COLUMN receipt_detail TEXT;
ALTER TABLE deliveries ADD COLUMN receipt_ms INTEGER;
CREATE INDEX deliveries_provider_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;
