/* libFuzzer target: the numbers of lib/jsondump.c against their contract in jsondump.h.
 *
 * Input: JSON text. For anything jansson parses (a scalar is put in an
 * array, as jansson dumps only arrays and objects):
 * - cs_json_dumps writes text that reads back to the same value: the same
 *   types, integers alike, every real the same double bit for bit, members
 *   in the same order; each real with the fewest significant digits that
 *   read back as it;
 * - that text as PostgreSQL's jsonb gives it back (tests/fuzz/fuzz.c
 *   renders numbers as numeric prints them) still reads with plain jansson
 *   to the same types, every real a real of the same value;
 * - cs_json_loads_stored reads what jansson reads, to the same value;
 * - when cs_json_numbers_keep passes the input text (the door check), each
 *   number is stored as exactly the decimal value written, and comes back
 *   from PostgreSQL bit for bit;
 * - cs_json_compact_stored writes the bytes cs_json_dumps writes of what
 *   cs_json_loads_stored reads, for an object or an array whose members are
 *   unique. */
#include "fuzz.h"

#include "jsondump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Significant digits of the number text s[0..len-1]: mantissa digits without
 * leading and trailing zeros (at least 1). */
static int significant_digits(const char *s, size_t len)
{
    const char *first = NULL, *last = NULL;

    for (size_t i = 0; i < len && s[i] != 'e' && s[i] != 'E'; i++) {
        if (s[i] >= '1' && s[i] <= '9') {
            if (!first)
                first = s + i;
            last = s + i;
        }
    }
    if (!first)
        return 1;
    return (int)(last - first + 1) - (int)(memchr(first, '.', (size_t)(last - first)) != NULL);
}

/* The fewest %g digits that strtod reads back as v. */
static int shortest_digits(double v)
{
    char buf[40];

    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return significant_digits(buf, strlen(buf));
    }
    return 17;
}

/* Each real of the compact text has the fewest significant digits of its double. */
static void real_is_shortest(const char *tok, size_t n, void *arg)
{
    (void)arg;
    if (strcspn(tok, ".eE") < n) {
        double v = strtod(tok, NULL);
        int got = significant_digits(tok, n), want = shortest_digits(v);

        cs_fuzz_require(got == want, "real %.*s has %d significant digits; %d read back", (int)n,
                        tok, got, want);
    }
}

/* cs_json_compact_stored against cs_json_dumps of stored (what cs_json_loads_stored read of in),
 * where its contract holds: an object or an array, members unique, no NUL byte (jansson stops
 * reading at one). */
static void check_compact(const char *in, size_t size, const json_t *stored)
{
    json_t *unique;
    char *want, *got;

    if (!stored || (!json_is_object(stored) && !json_is_array(stored)) || memchr(in, '\0', size))
        return;
    if (!(unique = json_loadb(in, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL)))
        return; /* a repeated member, or an integer past 64 bits (read here as refused) */
    json_decref(unique);
    want = cs_json_dumps(stored);
    got = cs_json_compact_stored(in, size);
    cs_fuzz_require(want != NULL, "cs_json_dumps returned NULL");
    cs_fuzz_require(got != NULL && strcmp(got, want) == 0,
                    "cs_json_compact_stored wrote %s where cs_json_dumps writes %s",
                    got ? got : "nothing", want);
    free(got);
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    json_error_t jerr;
    json_t *v = json_loadb(in, size, JSON_DECODE_ANY, &jerr), *back, *from_pg, *stored;
    char *text, *pg, *copy, why[256];
    bool keep;

    /* The door check and the stored reader take any text; neither may crash.
     * cs_json_numbers_keep gets an exact copy with no NUL after it, so a read
     * past len (an exponent at the very end: "1e2") is caught. */
    stored = cs_json_loads_stored(in, size, NULL);
    if (!(copy = malloc(size ? size : 1)))
        abort();
    memcpy(copy, in, size);
    memset(why, 'x', sizeof(why));
    keep = cs_json_numbers_keep(copy, size, why, sizeof(why));
    free(copy);
    cs_fuzz_require(keep || (cs_fuzz_terminated(why, sizeof(why)) && why[0] != '\0'),
                    "a number refused without a reason");
    check_compact(in, size, stored);
    if (!v) {
        json_decref(stored);
        return 0;
    }
    cs_fuzz_require(stored && json_equal(stored, v), "cs_json_loads_stored reads %s otherwise",
                    stored ? "it" : "nothing of it");
    json_decref(stored);
    if (!json_is_object(v) && !json_is_array(v)) {
        json_t *wrap = json_array();

        if (!wrap || json_array_append_new(wrap, v))
            abort();
        v = wrap;
    }

    text = cs_json_dumps(v);
    cs_fuzz_require(text != NULL, "cs_json_dumps returned NULL");
    cs_fuzz_require(cs_fuzz_utf8(text, strlen(text)), "output is not UTF-8: %s", text);
    back = json_loads(text, 0, &jerr);
    cs_fuzz_require(back != NULL, "output %s does not parse: %s", text, jerr.text);
    cs_fuzz_require_same(v, back, true, text);
    cs_fuzz_each_number(text, real_is_shortest, NULL);

    pg = cs_fuzz_pg_render(text);
    from_pg = json_loads(pg, 0, &jerr);
    cs_fuzz_require(from_pg != NULL,
                    "output %s, as PostgreSQL gives it back (%s), does not parse: %s", text, pg,
                    jerr.text);
    cs_fuzz_require_same(v, from_pg, keep, pg);

    /* What passed the door is stored as the very decimal value that was written
     * (compared token by token, so only where members are unique and no NUL
     * byte, which jansson skips after a number, hides the rest from strndup). */
    if (keep && !memchr(in, '\0', size)) {
        json_t *unique = json_loadb(in, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

        if (unique) {
            char *input = strndup(in, size);

            if (!input)
                abort();
            cs_fuzz_require(cs_fuzz_same_numbers(input, text, why, sizeof(why)),
                            "a number that passed the door was stored as another: %s", why);
            free(input);
        }
        json_decref(unique);
    }
    json_decref(from_pg);
    free(pg);
    json_decref(back);
    free(text);
    json_decref(v);
    return 0;
}
