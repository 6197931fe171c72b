-- What a history row needs to give the case exactly as it was right after its event (DESIGN §6,
-- §7), for CCD's history answers and for the submit answer, which must be the same bytes every
-- time it is rendered, whatever happened to the case since: the rest is there already (data,
-- state_id, security_classification, data_classification, version, case_revision) or does not
-- change (the case's id, reference, case type, jurisdiction, created_date). last_modified after
-- an event is the event's own created_date: the worker sets both to now() in the transaction
-- that applies it. Notes already record the revision they were added at (case_notes.case_revision).
--
--   last_state_modified_date  the case's last_state_modified_date right after the event
--   case_supplementary_data   the case's whole supplementary_data right after the event, on
--                             every row (supplementary_data, 008, is kept only on the rows of
--                             supplementary data updates, which their repeats answer with)
--
-- The worker writes both from the case row it has just written. The rows already there are
-- filled in as far as the history tells: last_state_modified_date is the created_date of the
-- latest row at or before it whose state differs from the row before it (the first row
-- included); case_supplementary_data is the supplementary_data of the latest supplementary data
-- update at or before it, else {} (a case is created with {} and only those updates change it).
-- Each case's latest row takes both from the case itself, which also covers updates applied
-- before 008 kept their map. Older rows of a case whose supplementary data changed before 008
-- are the one thing the history cannot tell: they get the map of the latest update 008 recorded
-- before them, or {}. A row written after this migration by a worker from before it has NULL in
-- both; the views render NULL as null.
ALTER TABLE ccd.case_event
    ADD COLUMN last_state_modified_date timestamptz,
    ADD COLUMN case_supplementary_data jsonb
        CHECK (case_supplementary_data IS NULL OR jsonb_typeof(case_supplementary_data) = 'object');

WITH marked AS (
    SELECT id, case_reference, case_revision, supplementary_data,
           CASE WHEN lag(state_id) OVER w IS DISTINCT FROM state_id THEN created_date END AS moved
      FROM ccd.case_event
    WINDOW w AS (PARTITION BY case_reference ORDER BY case_revision)
), runs AS (
    SELECT id, case_reference, case_revision, moved, supplementary_data,
           count(moved) OVER w AS state_run, count(supplementary_data) OVER w AS map_run
      FROM marked
    WINDOW w AS (PARTITION BY case_reference ORDER BY case_revision)
), filled AS (
    SELECT id,
           first_value(moved) OVER (PARTITION BY case_reference, state_run
                                    ORDER BY case_revision) AS state_moved,
           first_value(supplementary_data) OVER (PARTITION BY case_reference, map_run
                                                 ORDER BY case_revision) AS map
      FROM runs
)
UPDATE ccd.case_event e
   SET last_state_modified_date = f.state_moved,
       case_supplementary_data = COALESCE(f.map, '{}'::jsonb)
  FROM filled f
 WHERE f.id = e.id;

UPDATE ccd.case_event e
   SET last_state_modified_date = c.last_state_modified_date,
       case_supplementary_data = c.supplementary_data
  FROM ccd.case_data c
 WHERE c.reference = e.case_reference AND c.case_revision = e.case_revision;
