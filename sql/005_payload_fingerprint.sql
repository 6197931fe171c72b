-- The fingerprint of the submission each history row applied: SHA-256 (hex)
-- of its JSON with members sorted, compact. A resubmission of the same
-- idempotency key with another payload is rejected instead of answered as a
-- duplicate. Rows from before this migration have none, and their keys are
-- answered as duplicates whatever the payload.
ALTER TABLE ccd.case_event ADD COLUMN payload_sha256 text;
