-- Each outbox row names the topic it is published to, so that pipelines with
-- different changes topics on one database (and their relays) never publish
-- each other's changes. Rows from before this migration went to case-changes.
ALTER TABLE ccd.change_outbox ADD COLUMN topic text NOT NULL DEFAULT 'case-changes';
ALTER TABLE ccd.change_outbox ALTER COLUMN topic DROP DEFAULT;
DROP INDEX ccd.change_outbox_unpublished;
CREATE INDEX change_outbox_unpublished ON ccd.change_outbox (topic, id) WHERE published_at IS NULL;
