/* Dead letters of the case indices: what could not be indexed, recorded in
 * ccd.index_dead_letter (DESIGN §6, docs/indexer.md). */
#ifndef CS_DEAD_LETTER_H
#define CS_DEAD_LETTER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One change document that could not be indexed. Strings are borrowed. */
typedef struct cs_dead_letter {
    int64_t reference; /* 0: unknown */
    int64_t revision;  /* 0: unknown */
    const char *index; /* NULL: unknown */
    const char *reason;
    const char *doc; /* the message value, NUL-terminated; may be NULL */
    bool doc_is_json;
    const char *topic; /* NULL when not read from Kafka */
    int partition;
    int64_t offset;
} cs_dead_letter;

/* Records n dead letters in ccd.index_dead_letter on conn in one transaction. A
 * document PostgreSQL cannot store as jsonb is recorded as NULL with a note in
 * the reason. Returns 0, CS_ERR_RETRY (database unreachable: try again) or
 * CS_ERR, with the reason in errstr. */
int cs_dead_letters_write(PGconn *conn, const cs_dead_letter *dl, size_t n, char *errstr,
                          size_t errstr_size);

/* Deletes the dead letters of each case refs[i] whose revision is at most revs[i]: that
 * revision, or a newer one, of the case is now in the index, so they are resolved. Dead letters
 * without a revision (messages that were not a usable change) stay. One statement on conn; *
 * cleared (may be NULL) gets the number deleted. Returns 0, CS_ERR_RETRY (database unreachable:
 * try again) or CS_ERR, with the reason in errstr. */
int cs_dead_letters_clear(PGconn *conn, const int64_t *refs, const int64_t *revs, size_t n,
                          long long *cleared, char *errstr, size_t errstr_size);

#endif
