-- Onboarding a case type from CCD data store's own database (`casestream
-- import`, DESIGN §13): the state of each case type's import, the rows it
-- skipped, history rows without an idempotency key, and the grants it needs.

-- One row per case type imported, written by its first run. While owned_at is
-- NULL the worker rejects every submission of the case type (CCD still owns
-- its cases); `casestream import --mode cutover` sets it once source and
-- target agree, and from then on casestream owns the case type.
-- The high-water marks of the runs that completed: event_mark, the highest
-- source case_event.id they covered; case_mark, the newest source
-- last_modified of a case they read. A run in progress (run_event_max not
-- NULL) has fixed its upper bound, and records where it is: the cases phase by
-- the last source case id committed (run_case_cursor), the events phase by
-- the last (source case id, event id) committed (run_event_case,
-- run_event_id). A run started again continues that run.
CREATE TABLE ccd.case_type_import (
    case_type_id    varchar(255) PRIMARY KEY,
    revision_offset bigint NOT NULL CHECK (revision_offset >= 0),
    event_mark      bigint NOT NULL DEFAULT 0,
    case_mark       timestamp,
    run_event_max   bigint,
    run_case_max    timestamp,
    run_phase       text CHECK (run_phase IN ('cases', 'events')),
    run_case_cursor bigint NOT NULL DEFAULT 0,
    run_event_case  bigint NOT NULL DEFAULT 0,
    run_event_id    bigint NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_run_at     timestamptz,
    owned_at        timestamptz
);

-- Source rows the import skipped, with why: a `data` that is not a JSON
-- object, an event whose case is missing, an unknown classification, a case
-- whose reference or id another case holds in casestream, and so on. One row
-- per source row, written once (a run that reads it again changes nothing); a
-- case imported by a later run (fixed in the source) loses its row.
CREATE TABLE ccd.import_error (
    case_type_id   varchar(255) NOT NULL,
    source_table   text NOT NULL CHECK (source_table IN ('case_data', 'case_event')),
    source_id      bigint NOT NULL,
    case_reference bigint,
    reason         text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_type_id, source_table, source_id)
);

-- CCD's history has no idempotency keys: an imported history row has none.
-- UNIQUE (case_reference, idempotency_key) still holds for every key there is
-- (NULLs are distinct), so a submission's key is applied at most once as before.
ALTER TABLE ccd.case_event ALTER COLUMN idempotency_key DROP NOT NULL;

-- Privileges of the programs' roles (006 explains the roles): as in 007, and
-- for `casestream import`, which runs as the worker's role, the import's own
-- tables and moving the two id sequences past the imported ids. The worker
-- reads ccd.case_type_import for the case types not yet cut over.
CREATE OR REPLACE FUNCTION ccd.grant_roles(worker name, reader name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF worker IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA ccd TO %I', worker);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ccd.case_data, ccd.change_outbox'
                       ' TO %I', worker);
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON ccd.case_event, ccd.case_notes,'
                       ' ccd.index_dead_letter, ccd.disposed_case TO %I', worker);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ccd.event_outcome TO %I', worker);
        EXECUTE format('GRANT SELECT ON ccd.schema_migrations TO %I', worker);
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ccd TO %I', worker);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ccd.case_type_import,'
                       ' ccd.import_error TO %I', worker);
        EXECUTE format('GRANT UPDATE ON SEQUENCE ccd.case_data_id_seq, ccd.case_event_id_seq'
                       ' TO %I', worker);
    END IF;
    IF reader IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA ccd TO %I', reader);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA ccd TO %I', reader);
        EXECUTE format('GRANT INSERT, DELETE ON ccd.index_dead_letter TO %I', reader);
        EXECUTE format('GRANT USAGE ON SEQUENCE ccd.index_dead_letter_id_seq TO %I', reader);
    END IF;
END $$;
REVOKE ALL ON FUNCTION ccd.grant_roles(name, name) FROM PUBLIC;
