/* Checks shared by the libFuzzer targets. */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_fuzz_require(bool ok, const char *fmt, ...)
{
    va_list ap;

    if (ok)
        return;
    fputs("property failed: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

bool cs_fuzz_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned c = p[i];
        size_t n;
        uint32_t cp;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

bool cs_fuzz_terminated(const char *buf, size_t size)
{
    return memchr(buf, '\0', size) != NULL;
}

char *cs_fuzz_exact_copy(const void *data, size_t len)
{
    char *copy = malloc(len);

    if (!copy && len)
        abort();
    if (len)
        memcpy(copy, data, len);
    return copy;
}

/* ---- numbers ------------------------------------------------------------------------------- */

void cs_fuzz_each_number(const char *text, void (*fn)(const char *tok, size_t len, void *arg),
                         void *arg)
{
    bool in_string = false;

    for (size_t i = 0; text[i];) {
        char c = text[i];

        if (in_string) {
            if (c == '\\' && text[i + 1])
                i++;
            else if (c == '"')
                in_string = false;
            i++;
        } else if (c == '"') {
            in_string = true;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = strspn(text + i, "-+0123456789.eE");

            fn(text + i, n, arg);
            i += n;
        } else {
            i++;
        }
    }
}

typedef struct growing {
    char *buf;
    size_t len, cap;
} growing;

static void put(growing *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        while (t->len + n + 1 > t->cap)
            t->cap = t->cap ? t->cap * 2 : 256;
        if (!(t->buf = realloc(t->buf, t->cap)))
            abort();
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

/* A number token as sign, significant digits (no leading or trailing zeros;
 * "" for zero) and exponent: value = 0.digits x 10^exp. A token with more
 * significant digits than fit is marked too_long. */
typedef struct decimal {
    bool negative, too_long;
    char digits[1100];
    long exp;
} decimal;

static void to_decimal(const char *tok, size_t len, decimal *d)
{
    size_t i = 0, nd = 0, zeros = 0; /* zeros: seen after the last other digit */
    long before = 0, lead = 0;       /* digits before the point; zeros before the first other */
    bool point = false, seen = false;

    memset(d, 0, sizeof(*d));
    d->negative = len > 0 && tok[0] == '-';
    i = d->negative;
    for (; i < len && tok[i] != 'e' && tok[i] != 'E'; i++) {
        if (tok[i] == '.') {
            point = true;
            continue;
        }
        if (!point)
            before++;
        if (!seen && tok[i] == '0') {
            lead++;
            continue;
        }
        seen = true;
        if (tok[i] == '0') {
            zeros++;
            continue;
        }
        if (nd + zeros + 2 > sizeof(d->digits)) {
            d->too_long = true;
            continue;
        }
        for (; zeros > 0; zeros--)
            d->digits[nd++] = '0';
        d->digits[nd++] = tok[i];
    }
    d->exp = before - lead;
    if (i < len) {
        long e = strtol(tok + i + 1, NULL, 10);

        d->exp += e > 100000 ? 100000 : e < -100000 ? -100000 : e;
    }
    d->digits[nd] = '\0';
    if (nd == 0) {
        d->negative = false;
        d->exp = 0;
    }
}

static void render_number(const char *tok, size_t len, void *arg)
{
    growing *t = arg;
    static decimal d;
    size_t frac = 0, nd;
    long exp = 0, dscale, pos;
    bool point = false;

    /* The scale numeric_in gives: fraction digits written, less the exponent. */
    for (size_t i = 0; i < len && tok[i] != 'e' && tok[i] != 'E'; i++) {
        if (tok[i] == '.')
            point = true;
        else if (point && tok[i] >= '0' && tok[i] <= '9')
            frac++;
    }
    for (size_t i = 0; i < len; i++)
        if (tok[i] == 'e' || tok[i] == 'E')
            exp = strtol(tok + i + 1, NULL, 10);
    cs_fuzz_require(exp > -100000 && exp < 100000, "exponent %ld", exp);
    dscale = (long)frac - exp;
    if (dscale < 0)
        dscale = 0;
    to_decimal(tok, len, &d);
    cs_fuzz_require(!d.too_long, "number of over %zu digits", sizeof(d.digits));
    nd = strlen(d.digits);
    pos = d.exp; /* digits before the point */
    if (d.negative)
        put(t, "-", 1);
    if (pos <= 0)
        put(t, "0", 1);
    for (long k = 0; k < pos; k++)
        put(t, k < (long)nd ? d.digits + k : "0", 1);
    if (dscale > 0) {
        put(t, ".", 1);
        for (long k = pos; k < pos + dscale; k++)
            put(t, k >= 0 && k < (long)nd ? d.digits + k : "0", 1);
    }
}

char *cs_fuzz_pg_render(const char *text)
{
    growing t = {NULL, 0, 0};
    bool in_string = false;

    put(&t, "", 0);
    for (size_t i = 0; text[i];) {
        char c = text[i];
        size_t n = 1;

        if (in_string) {
            if (c == '\\' && text[i + 1])
                n = 2;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            n = strspn(text + i, "-+0123456789.eE");
            render_number(text + i, n, &t);
            i += n;
            continue;
        }
        put(&t, text + i, n);
        i += n;
    }
    return t.buf;
}

typedef struct tokens {
    char **tok;
    size_t n, cap;
} tokens;

static void collect(const char *tok, size_t len, void *arg)
{
    tokens *t = arg;

    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        if (!(t->tok = realloc(t->tok, t->cap * sizeof(*t->tok))))
            abort();
    }
    if (!(t->tok[t->n] = strndup(tok, len)))
        abort();
    t->n++;
}

static void tokens_free(tokens *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->tok[i]);
    free(t->tok);
}

bool cs_fuzz_same_numbers(const char *a, const char *b, char *why, size_t why_size)
{
    tokens ta = {NULL, 0, 0}, tb = {NULL, 0, 0};
    bool same = true;
    static decimal da, db;

    cs_fuzz_each_number(a, collect, &ta);
    cs_fuzz_each_number(b, collect, &tb);
    if (ta.n != tb.n) {
        snprintf(why, why_size, "%zu numbers, then %zu", ta.n, tb.n);
        same = false;
    }
    for (size_t i = 0; same && i < ta.n; i++) {
        to_decimal(ta.tok[i], strlen(ta.tok[i]), &da);
        to_decimal(tb.tok[i], strlen(tb.tok[i]), &db);
        if (da.too_long || db.too_long ? strcmp(ta.tok[i], tb.tok[i]) != 0
                                       : da.negative != db.negative || da.exp != db.exp ||
                                             strcmp(da.digits, db.digits) != 0) {
            snprintf(why, why_size, "%.60s became %.60s", ta.tok[i], tb.tok[i]);
            same = false;
        }
    }
    tokens_free(&ta);
    tokens_free(&tb);
    return same;
}

void cs_fuzz_require_same(json_t *a, json_t *b, bool bitwise, const char *text)
{
    const char *name;
    json_t *va;
    size_t i;

    cs_fuzz_require(json_typeof(a) == json_typeof(b), "a value changed type in %s", text);
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        void *it = json_object_iter(b);

        cs_fuzz_require(json_object_size(a) == json_object_size(b), "members lost in %s", text);
        json_object_foreach(a, name, va)
        {
            cs_fuzz_require(it && strcmp(name, json_object_iter_key(it)) == 0,
                            "member \"%s\" moved in %s", name, text);
            cs_fuzz_require_same(va, json_object_iter_value(it), bitwise, text);
            it = json_object_iter_next(b, it);
        }
        break;
    }
    case JSON_ARRAY:
        cs_fuzz_require(json_array_size(a) == json_array_size(b), "items lost in %s", text);
        json_array_foreach(a, i, va)
        {
            cs_fuzz_require_same(va, json_array_get(b, i), bitwise, text);
        }
        break;
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);

        cs_fuzz_require(bitwise ? memcmp(&x, &y, sizeof(x)) == 0 : x == y,
                        "real %.17g read back as %.17g from %s", x, y, text);
        break;
    }
    default:
        cs_fuzz_require(json_equal(a, b), "a value changed in %s", text);
    }
}
