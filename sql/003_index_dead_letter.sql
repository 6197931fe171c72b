-- The indexer's side of the schema: the record of documents Elasticsearch
-- rejected. (The change document itself, ccd.change_document, is in 002.)

-- Change documents Elasticsearch refused for their content (a mapping
-- conflict, too many fields, an unusable case type) or that could not be
-- read at all. The indexer records them here and carries on with the other
-- cases; an operator fixes the cause and runs `casestream reindex`.
-- Delivery is at least once: after a crash or a rebalance the same rejection
-- may be recorded twice.
CREATE TABLE ccd.index_dead_letter (
    id              bigserial PRIMARY KEY,
    reference       bigint,            -- NULL when the message had no usable reference
    case_revision   bigint,
    index_name      text,
    reason          text NOT NULL,     -- Elasticsearch's error type and reason
    document        jsonb,             -- the change document; a JSON string if it was not JSON
    kafka_topic     text,              -- where the indexer read it (NULL for reindex)
    kafka_partition integer,
    kafka_offset    bigint,
    created_date    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX index_dead_letter_reference ON ccd.index_dead_letter (reference);
CREATE INDEX index_dead_letter_created ON ccd.index_dead_letter (created_date);
