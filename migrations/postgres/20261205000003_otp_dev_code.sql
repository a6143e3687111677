-- With the development `log` SMS provider only, the pending code is also kept
-- in the clear, for `yizhan admin code`; NULL with a real provider.
ALTER TABLE otp_codes ADD COLUMN dev_code text;
