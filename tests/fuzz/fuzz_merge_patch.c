/* libFuzzer target: RFC 7396 merge patch and jsonb equality (lib/merge_patch.c).
 *
 * Input: two JSON texts one after the other, the target then the patch (e.g.
 * `{"a":1} {"a":null}`). The result is checked against the RFC's definition
 * member by member, the arguments must come back untouched and independent of
 * the result, and a patch applied twice changes nothing more. */
#include "fuzz.h"

#include "merge_patch.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* RFC 7396 section 2, as a check of result rather than a computation. */
static void check_rfc7396(json_t *target, json_t *patch, json_t *result)
{
    const char *name;
    json_t *value;

    if (!json_is_object(patch)) {
        cs_fuzz_require(json_equal(result, patch), "a non-object patch did not replace the target");
        return;
    }
    cs_fuzz_require(json_is_object(result), "an object patch did not give an object");
    if (!json_is_object(target))
        target = NULL; /* treated as {} */
    json_object_foreach(patch, name, value)
    {
        json_t *got = json_object_get(result, name);

        if (json_is_null(value))
            cs_fuzz_require(!got, "member \"%s\" patched with null is still there", name);
        else if (!json_is_object(value))
            cs_fuzz_require(got && json_equal(got, value), "member \"%s\" is not the patch's",
                            name);
        else if (got)
            check_rfc7396(target ? json_object_get(target, name) : NULL, value, got);
        else
            cs_fuzz_require(false, "member \"%s\" patched with an object is missing", name);
    }
    json_object_foreach(result, name, value)
    {
        json_t *old = target ? json_object_get(target, name) : NULL;

        if (json_object_get(patch, name))
            continue;
        cs_fuzz_require(old && json_equal(old, value),
                        "member \"%s\" not in the patch is not the target's", name);
    }
    if (target) {
        json_object_foreach(target, name, value)
        {
            if (!json_object_get(patch, name))
                cs_fuzz_require(json_object_get(result, name) != NULL,
                                "member \"%s\" not in the patch was lost", name);
        }
    }
}

/* Empties every container in v, so that anything v shares with another value shows. */
static void scrub(json_t *v)
{
    const char *name;
    json_t *child;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, name, child)
        {
            scrub(child);
        }
        json_object_clear(v);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            scrub(child);
        }
        json_array_clear(v);
    }
}

/* cs_json_equal against what jsonb promises and against json_equal. */
static void check_equal(json_t *a, json_t *b)
{
    bool eq = cs_json_equal(a, b);

    cs_fuzz_require(eq == cs_json_equal(b, a), "cs_json_equal is not symmetric");
    if (json_equal(a, b))
        cs_fuzz_require(eq, "json_equal holds but cs_json_equal does not");
#if LDBL_MANT_DIG >= 64
    /* A long double holds every int64 and every double exactly: numbers are
     * equal by value exactly when their long doubles are. */
    if (json_is_number(a) && json_is_number(b)) {
        long double x = json_is_integer(a) ? (long double)json_integer_value(a)
                                           : (long double)json_real_value(a);
        long double y = json_is_integer(b) ? (long double)json_integer_value(b)
                                           : (long double)json_real_value(b);

        cs_fuzz_require(eq == (x == y), "cs_json_equal says %d for numbers whose values %s", eq,
                        x == y ? "are equal" : "differ");
    }
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *target = NULL, *patch = NULL, *target0 = NULL, *patch0 = NULL, *result = NULL,
           *twice = NULL;
    size_t used;

    target = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);
    if (!target)
        return 0;
    used = (size_t)jerr.position;
    if (used > size)
        goto cleanup;
    patch = json_loadb((const char *)data + used, size - used, JSON_DECODE_ANY, &jerr);
    if (!patch)
        goto cleanup;
    target0 = json_deep_copy(target);
    patch0 = json_deep_copy(patch);
    if (!target0 || !patch0)
        abort();

    check_equal(target, target0);
    cs_fuzz_require(cs_json_equal(target, target0), "a value is not cs_json_equal to its copy");
    check_equal(target, patch);

    result = cs_merge_patch(target, patch);
    cs_fuzz_require(result != NULL, "cs_merge_patch returned NULL");
    cs_fuzz_require(json_equal(target, target0) && json_equal(patch, patch0),
                    "cs_merge_patch changed its arguments");
    check_rfc7396(target, patch, result);
    check_equal(result, target);

    twice = cs_merge_patch(result, patch);
    cs_fuzz_require(twice && json_equal(twice, result) && cs_json_equal(twice, result),
                    "a patch applied twice changed the result again");

    /* The result may share with the target what the patch leaves alone (the target was
     * checked unchanged above), never a value of the patch. */
    scrub(result);
    scrub(twice);
    cs_fuzz_require(json_equal(patch, patch0), "the result shares a value with the patch");

cleanup:
    json_decref(twice);
    json_decref(result);
    json_decref(patch0);
    json_decref(target0);
    json_decref(patch);
    json_decref(target);
    return 0;
}
