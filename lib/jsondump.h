/* JSON text for storage: compact, with every real number in its shortest exact form. */
#ifndef CS_JSONDUMP_H
#define CS_JSONDUMP_H

#include <jansson.h>

/* Like json_dumps(json, JSON_COMPACT), but each real number is written with
 * the fewest digits that read back as the same double (0.1, not jansson's
 * 0.10000000000000001), so a blob stored and compared by value keeps the
 * numbers it was given. Returns text the caller frees, or NULL. */
char *cs_json_dumps(const json_t *json);

#endif
