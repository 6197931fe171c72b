/* JSON numbers that survive PostgreSQL's jsonb: the storage form of reals, and the door check. */
#ifndef CS_JSONDUMP_H
#define CS_JSONDUMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Like json_dumps(json, JSON_COMPACT), but each real number is written with
 * the fewest digits that read back as the same double (0.1, not jansson's
 * 0.10000000000000001), in a form PostgreSQL's jsonb gives back as a real:
 * positional with a fraction for positive exponents ("100.0", not "1e+02",
 * which jsonb would render as the integer 100, or for 1e19 as an integer no
 * 64-bit reader takes). Returns text the caller frees, or NULL. */
char *cs_json_dumps(const json_t *json);

/* Checks every real number in a JSON text (already known to be valid JSON)
 * for values casestream cannot store and read back exactly: more significant
 * digits than the shortest form of its double (9007199254740993.0), too
 * small for a double (1e-400), or negative zero (jsonb keeps no sign on
 * zero). Integers are left to the parser (it refuses those past 64 bits).
 * Returns true when every number is kept; else false with the first offending
 * number named in why. */
bool cs_json_numbers_keep(const char *text, size_t len, char *why, size_t why_size);

/* Parses JSON text as PostgreSQL's jsonb renders it. Integers past 64 bits
 * (the rendering of reals of 2^63 or more stored before reals were written
 * with a fraction, e.g. 1e19 as 10000000000000000000) are read as reals
 * rather than refused. Returns a new reference, or NULL with err filled. */
json_t *cs_json_loads_stored(const char *text, size_t len, json_error_t *err);

/* cs_json_dumps(cs_json_loads_stored(text, len)) without building the tree: the same bytes for
 * any valid JSON text of an object or an array whose objects have no repeated member names (what
 * PostgreSQL renders from jsonb, and json_build_object with distinct names, are). Whitespace
 * between tokens is dropped, strings are written as jansson writes them (escapes read, then only
 * '"', '\\' and control characters escaped), integers as jansson reads them (past 64 bits: a real),
 * reals as cs_json_dumps writes them. Returns text the caller frees, or NULL when out of memory or
 * where jansson would refuse the text: a string with invalid UTF-8, a control character, \u0000, a
 * lone surrogate or a bad escape, a real past a double's range. */
char *cs_json_compact_stored(const char *text, size_t len);

#endif
