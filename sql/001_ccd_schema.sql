-- The ccd schema (DESIGN §7): cases, their event history, notes and the change outbox.

CREATE TYPE ccd.securityclassification AS ENUM ('PUBLIC', 'PRIVATE', 'RESTRICTED');

CREATE TABLE ccd.case_data (
    reference                bigint PRIMARY KEY CHECK (reference > 0),
    case_type_id             varchar(255) NOT NULL,
    jurisdiction             varchar(255) NOT NULL,
    state                    varchar(255) NOT NULL,
    security_classification  ccd.securityclassification NOT NULL DEFAULT 'PUBLIC',
    data                     jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    version                  integer NOT NULL DEFAULT 1,
    case_revision            bigint NOT NULL DEFAULT 1,
    created_date             timestamptz NOT NULL DEFAULT now(),
    last_modified            timestamptz NOT NULL DEFAULT now(),
    last_state_modified_date timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_data_case_type ON ccd.case_data (case_type_id);

-- One row per applied submission. The idempotency key is kept forever: it is
-- the authority that a submission is applied at most once.
CREATE TABLE ccd.case_event (
    id                      bigserial PRIMARY KEY,
    case_reference          bigint NOT NULL REFERENCES ccd.case_data (reference),
    case_revision           bigint NOT NULL,
    version                 integer NOT NULL,
    event_id                varchar(70) NOT NULL,
    user_id                 varchar(64) NOT NULL,
    summary                 varchar(1024),
    description             text,
    state_id                varchar(255) NOT NULL,
    security_classification ccd.securityclassification NOT NULL,
    data                    jsonb NOT NULL,
    idempotency_key         uuid NOT NULL,
    kafka_partition         integer,
    kafka_offset            bigint,
    created_date            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT case_event_idempotency UNIQUE (case_reference, idempotency_key),
    CONSTRAINT case_event_revision UNIQUE (case_reference, case_revision)
);

-- Data kept outside the blob: appended concurrently without version conflicts.
CREATE TABLE ccd.case_notes (
    case_reference bigint NOT NULL REFERENCES ccd.case_data (reference),
    id             bigserial,
    author         varchar(255) NOT NULL,
    body           text NOT NULL,
    case_revision  bigint NOT NULL,
    created_date   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_reference, id)
);

-- Committed changes waiting for (or done with) publication to case-changes.
CREATE TABLE ccd.change_outbox (
    id            bigserial PRIMARY KEY,
    reference     bigint NOT NULL,
    case_revision bigint NOT NULL,
    document      jsonb NOT NULL,
    created_date  timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX change_outbox_unpublished ON ccd.change_outbox (id) WHERE published_at IS NULL;
