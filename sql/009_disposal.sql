-- Disposal of cases at the end of their retention (DESIGN §6, §10): the
-- document that tells the changes topic a case is gone, and the lookups
-- `casestream dispose` needs to delete a case's outbox rows and recorded
-- outcomes.

-- The disposal document: what `casestream dispose` puts in the outbox, in the
-- same transaction as the deletion, for the relay to publish on the changes
-- topic after every earlier change of the case; and what the indexer reads for
-- a change sent by reference whose case has been disposed of since. It routes
-- the delete as a change document routes its index action (id, reference,
-- case_type_id, and case_type as changes published before 007 name it), at
-- case_revision = the last revision + 1: the index deletes the document at a
-- version above every change the case ever had, so none of them, arriving
-- late, writes it again.
CREATE FUNCTION ccd.disposal_document(d ccd.disposed_case) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'id', d.id,
        'reference', d.reference,
        'case_type_id', d.case_type_id,
        'case_type', d.case_type_id,
        'case_revision', d.last_revision + 1,
        'disposed', true)
$$;

-- A case's outbox rows and the outcomes recorded for its submissions, by case:
-- dispose deletes them with the case (the rows hold its documents, the
-- outcomes quote its reference and idempotency keys).
CREATE INDEX change_outbox_reference ON ccd.change_outbox (reference);
CREATE INDEX event_outcome_case_reference ON ccd.event_outcome ((outcome->>'case_reference'));
