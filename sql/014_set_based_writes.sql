-- The worker writes each batch with one statement per table (DESIGN §5): one
-- outbox statement for every applied submission of the batch, several of one
-- case among them. Each row's document is the case as that submission left it.

-- The change document (DESIGN §6) as 007 defines it, but for the notes: those the
-- case had at c's revision (every note records the revision it was added at). For
-- the case as it is now, the same document as before.
CREATE OR REPLACE FUNCTION ccd.change_document(c ccd.case_data) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'id', c.id,
        'reference', c.reference,
        'jurisdiction', c.jurisdiction,
        'case_type_id', c.case_type_id,
        'state', c.state,
        'security_classification', c.security_classification,
        'created_date', ccd.ccd_date_time(c.created_date),
        'last_modified', ccd.ccd_date_time(c.last_modified),
        'last_state_modified_date', ccd.ccd_date_time(c.last_state_modified_date),
        'data', c.data,
        'data_classification', c.data_classification,
        'supplementary_data', c.supplementary_data,
        'case_revision', c.case_revision,
        'version', c.version,
        'resolved_ttl', c.resolved_ttl,
        'case_type', c.case_type_id,
        'notes', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                               'id', n.id, 'author', n.author, 'body', n.body,
                               'created_date', ccd.ccd_date_time(n.created_date)) ORDER BY n.id)
                           FROM ccd.case_notes n
                           WHERE n.case_reference = c.reference
                             AND n.case_revision <= c.case_revision), '[]'::jsonb))
$$;

-- The change document of case c as the applied submission of history row e left it
-- (e's revision of c), with the retention date that submission left: the case's
-- own fields (id, reference, case type, jurisdiction, created_date) from c, what an
-- event changes from e (010 records the case after each event there). last_modified
-- is the event's own time, as the worker writes both in one transaction.
CREATE FUNCTION ccd.change_document(c ccd.case_data, e ccd.case_event, ttl date) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    c.state := e.state_id;
    c.security_classification := e.security_classification;
    c.data := e.data;
    c.data_classification := e.data_classification;
    c.supplementary_data := e.case_supplementary_data;
    c.version := e.version;
    c.case_revision := e.case_revision;
    c.last_modified := e.created_date;
    c.last_state_modified_date := e.last_state_modified_date;
    c.resolved_ttl := ttl;
    RETURN ccd.change_document(c);
END
$$;

-- Fails the statement with serialization_failure unless n rows were written: the
-- set form of expect_one_row (002), for a statement that writes several cases.
CREATE FUNCTION ccd.expect_rows(n bigint, expected bigint, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF n <> expected THEN
        RAISE EXCEPTION 'concurrent change to %', what USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
