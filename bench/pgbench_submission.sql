-- The baseline of `make bench` (b): what one applied submission writes, as one plain durable
-- transaction, the way a service would do it without casestream. pgbench runs it with
-- -M prepared and -D base=FIRST_REFERENCE -D m=CASES -D topic=CHANGES_TOPIC on cases
-- bench/run.sh creates first.
--
-- The change_outbox row is inserted already marked published (for a changes topic of the
-- run's own that no relay serves): nothing ships these cases to Kafka. That spares the
-- baseline the partial index entry of an unpublished row and the relay's later UPDATE, so it
-- errs in the baseline's favour.
\set ref :base + random(0, :m - 1)
\set n random(1, 1000000000)
BEGIN;
SELECT version, case_revision, data FROM ccd.case_data WHERE reference = :ref FOR UPDATE;
UPDATE ccd.case_data
   SET data = data || jsonb_build_object('n', :n::bigint), version = version + 1,
       case_revision = case_revision + 1, last_modified = now()
 WHERE reference = :ref;
INSERT INTO ccd.case_event (case_reference, case_revision, version, event_id, user_id,
                            summary, state_id, security_classification, data,
                            idempotency_key, kafka_partition, kafka_offset)
SELECT reference, case_revision, version, 'benchBaseline', 'pgbench', 'pgbench baseline',
       state, security_classification, data, gen_random_uuid(), 0, :n::bigint
  FROM ccd.case_data WHERE reference = :ref;
INSERT INTO ccd.change_outbox (reference, case_revision, document, topic, published_at)
SELECT reference, case_revision, ccd.change_document(:ref::bigint), :topic::text, now()
  FROM ccd.case_data WHERE reference = :ref;
COMMIT;
