-- The supplementary data right after each supplementary data update, kept with
-- that update's history row: a redelivery or a duplicate of the update is
-- answered with the map the original left (DESIGN §4, §5), not with the map as
-- it is when the repeat comes. NULL on every other history row.
ALTER TABLE ccd.case_event ADD COLUMN supplementary_data jsonb
    CHECK (supplementary_data IS NULL OR jsonb_typeof(supplementary_data) = 'object');
