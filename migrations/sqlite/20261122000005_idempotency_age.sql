-- Idempotency records are kept 24 hours; this index lets old ones be purged cheaply.
CREATE INDEX idempotency_age ON idempotency (created_at);
