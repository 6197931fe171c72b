/* A strict logfmt parser for the tests: what a log shipper reading casestream's lines accepts. */
#ifndef CS_TEST_LOGFMT_H
#define CS_TEST_LOGFMT_H

#include <stddef.h>

#define LOGFMT_MAX_PAIRS 64

typedef struct logfmt_pair {
    char key[64];
    char value[8192]; /* unescaped */
} logfmt_pair;

/* Parses one line (without its newline): pairs `key=value` separated by single spaces, keys
 * of [A-Za-z0-9_.-], values bare (no space, '=', '"' or control character) or "quoted" with
 * the escapes \" \\ \n \r \t \/ \b \f \uXXXX. Returns the number of pairs (into pairs[max]),
 * or -1 with the reason and the column in err. */
int logfmt_parse(const char *line, logfmt_pair *pairs, int max, char *err, size_t err_size);

/* The value of key in pairs, or NULL. */
const char *logfmt_get(const logfmt_pair *pairs, int n, const char *key);

/* Checks every line of the file at path: each parses and has ts, level, program and msg.
 * Returns the number of bad lines (the first reason in err), -1 when it cannot be read;
 * *lines gets the number of lines read. */
int logfmt_check_file(const char *path, int *lines, char *err, size_t err_size);

#endif
