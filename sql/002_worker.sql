-- What the worker needs beyond DESIGN §7's tables.

-- The change document of a case as it is now: what the worker's outbox
-- publishes on case-changes and what `casestream reindex` sends to
-- Elasticsearch. Keep both producers on this one definition. Notes are every
-- note of the case ordered by id, '[]' when there are none.
CREATE FUNCTION ccd.change_document(c ccd.case_data) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'reference', c.reference,
        'case_type', c.case_type_id,
        'jurisdiction', c.jurisdiction,
        'state', c.state,
        'version', c.version,
        'case_revision', c.case_revision,
        'security_classification', c.security_classification,
        'created_date', c.created_date,
        'last_modified', c.last_modified,
        'data', c.data,
        'notes', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                               'id', n.id, 'author', n.author, 'body', n.body,
                               'created_date', n.created_date) ORDER BY n.id)
                           FROM ccd.case_notes n
                           WHERE n.case_reference = c.reference), '[]'::jsonb))
$$;

-- The same by reference (NULL when there is no such case), for the outbox:
--   INSERT INTO ccd.change_outbox (reference, case_revision, document)
--   VALUES ($1, $2, ccd.change_document($1::bigint))
CREATE FUNCTION ccd.change_document(ref bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ccd.change_document(c) FROM ccd.case_data c WHERE c.reference = ref
$$;

-- The outcome the worker decided for each consumed message it took to the
-- database, by source position. A message delivered again (after a crash or a
-- rebalance, before its offset was committed) is answered with the same
-- outcome instead of being decided again. Rows older than the worker's
-- --outcome-retention are deleted by the worker.
CREATE TABLE ccd.event_outcome (
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    outcome         jsonb NOT NULL,
    created_date    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX event_outcome_created ON ccd.event_outcome (created_date);

-- Fails the statement with serialization_failure unless exactly one row was
-- written. The worker checks each write of a case this way, so a batch that
-- raced another writer is rolled back and retried instead of committed.
CREATE FUNCTION ccd.expect_one_row(n bigint, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF n <> 1 THEN
        RAISE EXCEPTION 'concurrent change to %', what USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
