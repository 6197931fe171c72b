/* JSON merge patch (RFC 7396) and JSON equality with PostgreSQL jsonb's number semantics. */
#include "merge_patch.h"

#include <string.h>

/* RFC 7396 MergePatch of target (borrowed, may be NULL) by patch: a new value that shares
 * with target every member the patch leaves alone (values are never changed in place once
 * built: a case's data is shared between the versions a batch holds of it). Only the objects on
 * the patch's paths are new. Returns the result reference or NULL when out of memory. */
static json_t *merge(json_t *target, json_t *patch)
{
    const char *name;
    json_t *value, *out;

    if (!json_is_object(patch))
        return json_deep_copy(patch);
    /* A shallow copy: a new object holding references to target's members. */
    if (!(out = json_is_object(target) ? json_copy(target) : json_object()))
        return NULL;
    json_object_foreach(patch, name, value)
    {
        json_t *child;

        if (json_is_null(value)) {
            json_object_del(out, name);
            continue;
        }
        child = merge(json_object_get(out, name), value);
        if (!child || json_object_set_new(out, name, child) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

json_t *cs_merge_patch(json_t *target, json_t *patch)
{
    return merge(target, patch ? patch : json_null());
}

/* An integer and a real are equal only if the real is integral and the same value. */
static bool number_equal(json_t *a, json_t *b)
{
    double r;

    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_real(a) && json_is_real(b))
        return json_real_value(a) == json_real_value(b);
    if (json_is_real(a)) {
        json_t *t = a;
        a = b;
        b = t;
    }
    r = json_real_value(b);
    /* Compare exactly, not through a double: 2^53 + 1 is not 2^53. The range
     * test keeps the conversion defined. */
    return r >= -9223372036854775808.0 && r < 9223372036854775808.0 && (double)(json_int_t)r == r &&
           (json_int_t)r == json_integer_value(a);
}

bool cs_json_equal(json_t *a, json_t *b)
{
    const char *name;
    json_t *value;
    size_t i;

    if (!a)
        a = json_null();
    if (!b)
        b = json_null();
    if (json_is_number(a) && json_is_number(b))
        return number_equal(a, b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach(a, name, value)
        {
            json_t *other = json_object_get(b, name);

            if (!other || !cs_json_equal(value, other))
                return false;
        }
        return true;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        json_array_foreach(a, i, value)
        {
            if (!cs_json_equal(value, json_array_get(b, i)))
                return false;
        }
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default: /* true, false, null: the type is the value */
        return true;
    }
}
