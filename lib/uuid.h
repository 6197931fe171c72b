/* UUIDs: validation into canonical lower-case text, and random (version 4) generation. */
#ifndef CS_UUID_H
#define CS_UUID_H

#include <stdbool.h>

/* True if s is a UUID in 8-4-4-4-12 hex form (either case, nothing around it).
 * On success out, if not NULL, receives the canonical lower-case text; on
 * failure out is untouched. s may be NULL (false). */
bool cs_uuid_parse(const char *s, char out[37]);

/* Writes a random version 4 UUID, lower-case, into out. Returns 0, or CS_ERR
 * if the system has no randomness to give. */
int cs_uuid_generate(char out[37]);

#endif
