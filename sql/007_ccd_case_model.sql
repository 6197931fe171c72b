-- The fields of CCD's case model (DESIGN §6, §7) that casestream did not keep,
-- the change document in the shape of CCD's search documents, and the record
-- of disposed cases. Existing cases are carried over: every one gets an id, an
-- empty supplementary_data and NULL where casestream has no value yet.

-- A case's internal id, CCD's `id`: the unique identifier of its search
-- document. Existing cases are numbered from 1 in the order they were created;
-- new cases take the next number unless their creating submission brings
-- CCD's own id.
CREATE SEQUENCE ccd.case_data_id_seq AS bigint;
ALTER TABLE ccd.case_data
    ADD COLUMN id bigint,
    ADD COLUMN data_classification jsonb
        CHECK (data_classification IS NULL OR jsonb_typeof(data_classification) = 'object'),
    ADD COLUMN supplementary_data jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(supplementary_data) = 'object'),
    ADD COLUMN resolved_ttl date;
UPDATE ccd.case_data c SET id = o.n
  FROM (SELECT reference, row_number() OVER (ORDER BY created_date, reference) AS n
          FROM ccd.case_data) o
 WHERE o.reference = c.reference;
SELECT setval('ccd.case_data_id_seq', COALESCE(max(id), 0) + 1, false) FROM ccd.case_data;
ALTER SEQUENCE ccd.case_data_id_seq OWNED BY ccd.case_data.id;
ALTER TABLE ccd.case_data
    ALTER COLUMN id SET DEFAULT nextval('ccd.case_data_id_seq'),
    ALTER COLUMN id SET NOT NULL,
    ADD CONSTRAINT case_data_id_positive CHECK (id > 0),
    ADD CONSTRAINT case_data_id UNIQUE (id);
-- For retention: the cases whose resolved_ttl has passed.
CREATE INDEX case_data_resolved_ttl ON ccd.case_data (resolved_ttl) WHERE resolved_ttl IS NOT NULL;

-- What CCD's AuditEvent carries beyond casestream's history rows (summary,
-- description and security_classification were there already). NULL in the
-- rows from before this migration.
ALTER TABLE ccd.case_event
    ADD COLUMN event_name varchar(255),
    ADD COLUMN user_first_name varchar(255),
    ADD COLUMN user_last_name varchar(255),
    ADD COLUMN state_name varchar(255),
    ADD COLUMN case_type_version integer,
    ADD COLUMN data_classification jsonb
        CHECK (data_classification IS NULL OR jsonb_typeof(data_classification) = 'object'),
    ADD COLUMN significant_item jsonb
        CHECK (significant_item IS NULL OR jsonb_typeof(significant_item) = 'object'),
    ADD COLUMN proxied_by varchar(64),
    ADD COLUMN proxied_by_first_name varchar(255),
    ADD COLUMN proxied_by_last_name varchar(255);

-- A case that was disposed of at the end of its retention: what stays of it.
-- A later submission for the reference is refused instead of creating the case
-- again; last_revision is the version above which the index document is deleted.
CREATE TABLE ccd.disposed_case (
    reference     bigint PRIMARY KEY,
    id            bigint,  -- the case's internal id: its search document's _id
    case_type_id  varchar(255) NOT NULL,
    jurisdiction  varchar(255) NOT NULL,
    last_revision bigint NOT NULL,
    disposed_at   timestamptz NOT NULL DEFAULT now()
);

-- A timestamp as CCD writes dates: an ISO local date-time in UTC, without a
-- zone, to the millisecond (2025-03-01T10:15:30.123).
CREATE FUNCTION ccd.ccd_date_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS')
$$;

-- The change document (DESIGN §6): the members of CCD's search document
-- (ElasticSearchCaseDetailsDTO), the external version case_revision, and
-- casestream's own version, resolved_ttl and notes. case_type repeats
-- case_type_id for the consumers of case-changes written before it was named so.
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
                           WHERE n.case_reference = c.reference), '[]'::jsonb))
$$;

-- Privileges of the programs' roles (006 explains the roles), now with the
-- disposal record, deletes for disposing of cases, and deletes of index dead
-- letters once a later revision of their case is indexed.
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
    END IF;
    IF reader IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA ccd TO %I', reader);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA ccd TO %I', reader);
        EXECUTE format('GRANT INSERT, DELETE ON ccd.index_dead_letter TO %I', reader);
        EXECUTE format('GRANT USAGE ON SEQUENCE ccd.index_dead_letter_id_seq TO %I', reader);
    END IF;
END $$;
REVOKE ALL ON FUNCTION ccd.grant_roles(name, name) FROM PUBLIC;
