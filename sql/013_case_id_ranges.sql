-- Internal case ids from two sources never meet (DESIGN §5.7, §7). CCD numbers its
-- cases from 1 with a sequence of its own, and a creating submission may carry that
-- id; a case created without one takes the next value of ccd.case_data_id_seq. Both
-- counting up from the bottom, they would sooner or later hand out the same id to two
-- cases. casestream's own ids therefore start at 2^62, far above any id CCD will
-- reach, and the validator refuses a submitted id at or above it: the two ranges are
-- disjoint. The ids given before this migration (numbered from 1 by 007, and the
-- sequence's values since) stay what they are, as they are the _id of their cases'
-- search documents; a create naming one of them, or the id of a disposed case, is
-- rejected by the worker with the case that holds it.
DO $$
BEGIN
    IF (SELECT last_value FROM ccd.case_data_id_seq) < 4611686018427387904 THEN
        ALTER SEQUENCE ccd.case_data_id_seq START WITH 4611686018427387904 MINVALUE 4611686018427387904
            RESTART WITH 4611686018427387904;
    END IF;
END $$;

-- The worker looks up the ids a batch's creates name among the disposed cases too.
CREATE INDEX disposed_case_id ON ccd.disposed_case (id);
