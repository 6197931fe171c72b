/* JSON merge patch (RFC 7396) and JSON equality with PostgreSQL jsonb's number semantics. */
#ifndef CS_MERGE_PATCH_H
#define CS_MERGE_PATCH_H

#include <jansson.h>
#include <stdbool.h>

/* Applies patch to target as RFC 7396 defines: a non-object patch replaces
 * the target, null members delete, object members merge recursively. target
 * and patch are borrowed and left unchanged (NULL target counts as JSON
 * null). Returns a new value the caller owns (json_decref), or NULL if memory
 * ran out. It shares with target every member the patch leaves alone (only
 * the objects on the patch's paths are new), so neither may be changed in
 * place afterwards: a batch holds many versions of one case's data at the
 * cost of what each changed. */
json_t *cs_merge_patch(json_t *target, json_t *patch);

/* Deep equality as jsonb compares: object member order does not matter and
 * numbers compare by value, so integer 1 equals real 1.0 (jansson's
 * json_equal says they differ). A NULL argument counts as JSON null. */
bool cs_json_equal(json_t *a, json_t *b);

#endif
