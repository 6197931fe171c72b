-- casestream dispose no longer deletes the outcomes recorded for a disposed
-- case's submissions (ccd.event_outcome): it keeps them, and records the
-- applied outcome of each of its history rows of the last
-- --outcome-retention-hours, so that a message of the case delivered again
-- after the disposal (a worker died between its commit and its offset) is
-- answered exactly as it was, or would have been, the first time (DESIGN §4,
-- §10). The worker deletes them with every other outcome past the retention.
-- Nothing looks recorded outcomes up by case any more.
DROP INDEX ccd.event_outcome_case_reference;
