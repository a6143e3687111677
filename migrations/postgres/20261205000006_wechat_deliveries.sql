-- Subscribe messages go through the outbox like pushes and texts (issue 25):
-- `channel` may be 'wechat'.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_channel_check
    CHECK (channel IN ('push', 'sms', 'wechat'));
