/* casestream import's decisions, apart from its I/O: where a COPY row of the source belongs,
 * which batches may commit, and what validate calls a mismatch. */
#ifndef CS_IMPORT_RULES_H
#define CS_IMPORT_RULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads the first n (1 or 2) columns of a row of COPY's text format (tab-separated, ending in
 * a newline) as decimal integers into out[0..n-1]. Returns false when they are not there or
 * not integers (NULL, \N, included). */
bool cs_import_row_keys(const char *row, size_t len, int n, int64_t out[2]);

/* A row of the events COPY (source case id, then the columns of ccd.case_event in the order
 * the direct COPY names them, then the reason to skip it): whether it is to be skipped (its
 * last column is not \N), and where the ccd.case_event columns are, row[*from..*to), to be
 * sent with a newline after them. Returns false when the row has not those three parts. */
bool cs_import_event_row(const char *row, size_t len, size_t *from, size_t *to, bool *skip);

/* One case as validate compares it, on either side. Strings are borrowed. */
typedef struct cs_import_case {
    int64_t reference;
    long long events;     /* history rows (the source's: those the import copies) */
    const char *data_md5; /* md5 of the blob as jsonb writes it */
    json_t *data;         /* the blob, when read to compare by value; NULL = not read */
    const char *state;
    int version;
    const char *classification;
} cs_import_case;

/* What differs between a source case and its copy, as a set of these bits. */
enum {
    CS_IMPORT_EVENTS = 1 << 0,
    CS_IMPORT_DATA = 1 << 1,
    CS_IMPORT_STATE = 1 << 2,
    CS_IMPORT_VERSION = 1 << 3,
    CS_IMPORT_CLASSIFICATION = 1 << 4
};

/* Compares the source case s with the target's t (same reference). The blobs are equal when
 * their md5s are, else compared by JSON value (jsonb's rule: member order and the writing of
 * numbers do not matter) when both are read, else they differ: a caller that sees
 * CS_IMPORT_DATA with data not read reads both and asks again. Returns the bits that differ. */
unsigned cs_import_compare(const cs_import_case *s, const cs_import_case *t);

/* The name of one difference bit ("events", "data", "state", "version",
 * "security_classification"). */
const char *cs_import_field_name(unsigned bit);

/* Batches commit in the order they were read, so that the mark recorded with each one says
 * exactly what is done. A writer that has finished batch seq waits its turn. */
typedef struct cs_import_turns {
    uint64_t next; /* the batch whose turn it is to commit */
    bool failed;   /* a batch failed: no later one commits */
} cs_import_turns;

/* Whether batch seq may commit now. */
bool cs_import_my_turn(const cs_import_turns *t, uint64_t seq);
/* Batch seq committed (true) or failed (false): the next one's turn, or no more turns. */
void cs_import_done(cs_import_turns *t, uint64_t seq, bool committed);

#endif
