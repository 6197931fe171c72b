-- The revisions CCD reports with each event it submits (DecentralisedCaseEvent's
-- start_revision: the case revision the user started the event from; merge_revision:
-- the revision CCD merged the user's changes into just before submitting), recorded
-- on the event's history row as the submission gave them (DESIGN §3, §5.6). NULL on
-- rows from before 012 and wherever a submission did not give them. The table-level
-- grants of ccd.grant_roles cover the new columns.
ALTER TABLE ccd.case_event
    ADD COLUMN start_revision bigint CHECK (start_revision IS NULL OR start_revision >= 0),
    ADD COLUMN merge_revision bigint CHECK (merge_revision IS NULL OR merge_revision >= 0);
