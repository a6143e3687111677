-- Texts through real SMS providers (issue 22): numbers that cannot be
-- texted, and what the provider said of each text (its id, its receipt).
-- Times here are Unix milliseconds, as on SQLite, so that both backends
-- run the same statements.

CREATE TABLE sms_unreachable (
    phone    text PRIMARY KEY,
    reason   text NOT NULL CHECK (reason IN ('invalid_number', 'unsubscribed', 'blacklisted')),
    code     text NOT NULL,
    provider text NOT NULL,
    since_ms bigint NOT NULL
);

ALTER TABLE deliveries ADD COLUMN provider_ref text;
ALTER TABLE deliveries ADD COLUMN receipt text CHECK (receipt IN ('delivered', 'failed'));
ALTER TABLE deliveries ADD COLUMN receipt_detail text;
ALTER TABLE deliveries ADD COLUMN receipt_ms bigint;
CREATE INDEX deliveries_provider_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;
