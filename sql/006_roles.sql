-- Privileges of the roles casestream's programs connect as (DESIGN §7), so
-- that none of them needs the schema owner's:
--   casestream_worker  the worker and the indexer: the reads and writes that
--                      applying, publishing and indexing need, no DDL
--   casestream_reader  casestream case and reindex: reads, and the index
--                      dead letters reindex records
-- casestream migrate calls ccd.grant_roles after the migrations, for those of
-- the two roles that exist, so the grants follow every later table. A later
-- migration that adds a table replaces this function.
CREATE FUNCTION ccd.grant_roles(worker name, reader name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF worker IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA ccd TO %I', worker);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ccd.case_data, ccd.change_outbox TO %I',
                       worker);
        EXECUTE format('GRANT SELECT, INSERT ON ccd.case_event, ccd.case_notes,'
                       ' ccd.index_dead_letter TO %I', worker);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ccd.event_outcome TO %I', worker);
        EXECUTE format('GRANT SELECT ON ccd.schema_migrations TO %I', worker);
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ccd TO %I', worker);
    END IF;
    IF reader IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA ccd TO %I', reader);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA ccd TO %I', reader);
        EXECUTE format('GRANT INSERT ON ccd.index_dead_letter TO %I', reader);
        EXECUTE format('GRANT USAGE ON SEQUENCE ccd.index_dead_letter_id_seq TO %I', reader);
    END IF;
END $$;
REVOKE ALL ON FUNCTION ccd.grant_roles(name, name) FROM PUBLIC;
