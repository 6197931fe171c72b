/* Error codes shared by the casestream library and programs. */
#ifndef CS_ERR_H
#define CS_ERR_H

/* Functions that act return 0 on success or one of these. Callers branch on
 * CS_ERR_RETRY (a transient failure: back off and try again) versus the rest
 * (permanent for this input). Detail goes into the caller's errstr. */
typedef enum cs_err {
    CS_OK = 0,
    CS_ERR = -1,         /* permanent failure */
    CS_ERR_RETRY = -2,   /* transient: service unreachable, timeout, serialization */
    CS_ERR_INVALID = -3, /* bad input from the caller */
    CS_ERR_NOTFOUND = -4,
    CS_ERR_CONFLICT = -5
} cs_err;

/* Exit status for invalid configuration (sysexits.h EX_CONFIG). */
#define CS_EXIT_CONFIG 78

#endif
