-- Whether a case has notes, on its row: most cases have none, and the reads that
-- project notes (CCD's views, lib/ccd_view.c; the change document) then skip the
-- lookup in case_notes, which cost more than the rest of reading the case.
--
-- has_notes is true once a note of the case was written, by a trigger on
-- case_notes, so every writer keeps it (the worker's single and set-based
-- statements alike). Notes leave only with their case (casestream dispose), so a
-- true marker never outlives them; false means the case has no notes.
ALTER TABLE ccd.case_data ADD COLUMN has_notes boolean NOT NULL DEFAULT false;

UPDATE ccd.case_data c SET has_notes = true
WHERE EXISTS (SELECT 1 FROM ccd.case_notes n WHERE n.case_reference = c.reference);

-- Once per statement: the cases that gain their first note. The case row is already
-- locked by the transaction that adds a note to it (the worker updates it first).
CREATE FUNCTION ccd.mark_cases_with_notes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ccd.case_data c SET has_notes = true
    FROM (SELECT DISTINCT case_reference FROM added) a
    WHERE c.reference = a.case_reference AND NOT c.has_notes;
    RETURN NULL;
END
$$;

CREATE TRIGGER case_notes_mark_case AFTER INSERT ON ccd.case_notes
REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION ccd.mark_cases_with_notes();

-- The change document as 014 defines it, without the notes lookup for a case that
-- has none: the same document.
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
        'notes', CASE WHEN c.has_notes THEN
                     COALESCE((SELECT jsonb_agg(jsonb_build_object(
                                   'id', n.id, 'author', n.author, 'body', n.body,
                                   'created_date', ccd.ccd_date_time(n.created_date))
                                   ORDER BY n.id)
                               FROM ccd.case_notes n
                               WHERE n.case_reference = c.reference
                                 AND n.case_revision <= c.case_revision), '[]'::jsonb)
                 ELSE '[]'::jsonb END)
$$;
