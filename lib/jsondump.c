/* JSON numbers that survive PostgreSQL's jsonb: the storage form of reals, and the door check. */
#include "jsondump.h"

#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest %g form of v that strtod reads back as v. */
static void shortest_g(double v, char *out, size_t size)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, size, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* Writes v as a real PostgreSQL keeps a real: positional digits with a
 * fraction ("100.0", not "1e+02", which jsonb would give back as the integer
 * 100, or as an integer jansson cannot read when it is 2^63 or more).
 * Negative exponents stay as they are: jsonb renders them with a fraction. */
static void put_real(cs_text *b, double v)
{
    char g[40];
    const char *e;

    shortest_g(v, g, sizeof(g));
    if (!(e = strpbrk(g, "eE"))) {
        cs_text_put(b, g, strlen(g));
        if (!strpbrk(g, ".n")) /* "3" → "3.0"; "nan"/"inf" never reach here */
            cs_text_put(b, ".0", 2);
        return;
    }
    {
        int exp = atoi(e + 1);
        char digits[40];
        size_t nd = 0;
        const char *m = g;

        if (exp < 0) {
            cs_text_put(b, g, strlen(g));
            return;
        }
        if (*m == '-')
            cs_text_put(b, m++, 1);
        for (; m < e; m++)
            if (*m >= '0' && *m <= '9')
                digits[nd++] = *m;
        /* digits = d0.d1d2…, value = d0d1… × 10^(exp - (nd - 1)) */
        if ((size_t)exp + 1 >= nd) {
            cs_text_put(b, digits, nd);
            for (size_t z = nd; z < (size_t)exp + 1; z++)
                cs_text_put(b, "0", 1);
            cs_text_put(b, ".0", 2);
        } else {
            cs_text_put(b, digits, (size_t)exp + 1);
            cs_text_put(b, ".", 1);
            cs_text_put(b, digits + exp + 1, nd - (size_t)exp - 1);
        }
    }
}

char *cs_json_dumps(const json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT);
    cs_text b = CS_TEXT_INIT;
    size_t len;
    bool in_string = false;

    if (!text)
        return NULL;
    len = strlen(text);
    cs_text_put(&b, "", 0);
    for (size_t i = 0; i < len && b.ok;) {
        char c = text[i];

        if (in_string) {
            size_t n = (c == '\\' && i + 1 < len) ? 2 : 1;

            cs_text_put(&b, text + i, n);
            in_string = c != '"';
            i += n;
        } else if (c == '"') {
            in_string = true;
            cs_text_put(&b, text + i++, 1);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t end = i + strspn(text + i, "-+0123456789.eE");

            if (strcspn(text + i, ".eE") < end - i)
                put_real(&b, strtod(text + i, NULL));
            else
                cs_text_put(&b, text + i, end - i);
            i = end;
        } else {
            cs_text_put(&b, text + i++, 1);
        }
    }
    free(text);
    if (!b.ok) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* A decimal number reduced to sign, significant digits and exponent, so two
 * spellings of one value compare equal ("1.50e1" and "15"). */
typedef struct decimal {
    bool negative;
    char digits[800]; /* significant digits, no leading or trailing zeros; "" = zero */
    long exp;         /* value = 0.digits × 10^exp */
    bool too_long;
} decimal;

static void to_decimal(const char *s, size_t n, decimal *d)
{
    size_t i = 0, nd = 0;
    long point = -1, lead = 0;
    bool seen = false;

    memset(d, 0, sizeof(*d));
    if (i < n && (s[i] == '-' || s[i] == '+'))
        d->negative = s[i++] == '-';
    for (; i < n && s[i] != 'e' && s[i] != 'E'; i++) {
        if (s[i] == '.') {
            point = (long)nd + lead;
            continue;
        }
        if (!seen && s[i] == '0') {
            lead++;
            continue;
        }
        seen = true;
        if (nd + 1 >= sizeof(d->digits)) {
            d->too_long = true;
            return;
        }
        d->digits[nd++] = s[i];
    }
    if (point < 0)
        point = (long)nd + lead;
    d->exp = point - lead;
    if (i < n) {
        /* The exponent is read within the n bytes (the token need not end with a NUL).
         * Exponents past any double's range are clamped: the value is then out of range. */
        bool minus = false;
        long e = 0;

        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            minus = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e <= 100000)
                e = e * 10 + (s[i] - '0');
        if (e > 100000)
            e = 100000;
        d->exp += minus ? -e : e;
    }
    while (nd > 0 && d->digits[nd - 1] == '0')
        nd--;
    d->digits[nd] = '\0';
}

/* Checks one real token (JSON number text with a fraction or exponent). */
static bool real_keeps(const char *tok, size_t n, char *why, size_t why_size)
{
    int shown = n > 40 ? 40 : (int)n;
    char copy[64], g[40];
    decimal given, kept;
    double v;

    to_decimal(tok, n, &given);
    if (given.too_long || strlen(given.digits) > 17) {
        snprintf(why, why_size, "number %.*s has more digits than a 64-bit real keeps", shown, tok);
        return false;
    }
    if (given.digits[0] == '\0') {
        if (!given.negative)
            return true;
        snprintf(why, why_size, "number %.*s: negative zero cannot be stored", shown, tok);
        return false;
    }
    snprintf(copy, sizeof(copy), "%s0.%.17se%ld", given.negative ? "-" : "", given.digits,
             given.exp);
    v = strtod(copy, NULL);
    if (v == 0) {
        snprintf(why, why_size, "number %.*s is too small for a 64-bit real", shown, tok);
        return false;
    }
    shortest_g(v, g, sizeof(g));
    to_decimal(g, strlen(g), &kept);
    if (kept.negative != given.negative || kept.exp != given.exp ||
        strcmp(kept.digits, given.digits) != 0) {
        snprintf(why, why_size,
                 "number %.*s cannot be kept exactly (a 64-bit real holds %s); send it as a "
                 "string",
                 shown, tok, g);
        return false;
    }
    return true;
}

bool cs_json_numbers_keep(const char *text, size_t len, char *why, size_t why_size)
{
    bool in_string = false;

    for (size_t i = 0; i < len;) {
        char c = text[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            i++;
        } else if (c == '"') {
            in_string = true;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = 0;

            while (i + n < len && strchr("-+0123456789.eE", text[i + n]) && text[i + n])
                n++;
            if (memchr(text + i, '.', n) || memchr(text + i, 'e', n) || memchr(text + i, 'E', n)) {
                if (!real_keeps(text + i, n, why, why_size))
                    return false;
            }
            i += n;
        } else {
            i++;
        }
    }
    return true;
}

/* True if an integer token is outside what jansson reads (json_int_t, 64 bits). */
static bool integer_overflows(const char *tok, size_t n)
{
    static const char max[] = "9223372036854775807";
    size_t digits = n - (tok[0] == '-');
    const char *d = tok + (tok[0] == '-');

    if (digits != sizeof(max) - 1)
        return digits > sizeof(max) - 1;
    /* -9223372036854775808 is the one value with 19 digits past max that fits. */
    return strncmp(d, max, digits) > 0 &&
           !(tok[0] == '-' && strncmp(d, "9223372036854775808", digits) == 0);
}

/* Copies text into b (when b is not NULL) with ".0" after each integer past
 * 64 bits. Returns how many such integers there are. */
static size_t widen_integers(const char *text, size_t len, cs_text *b)
{
    bool in_string = false;
    size_t count = 0;

    for (size_t i = 0; i < len;) {
        char c = text[i];
        size_t n = 1;
        bool widen = false;

        if (in_string) {
            n = (c == '\\' && i + 1 < len) ? 2 : 1;
            in_string = c != '"';
        } else if (c == '"') {
            in_string = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            for (n = 0; i + n < len && text[i + n] && strchr("-+0123456789.eE", text[i + n]);)
                n++;
            widen = !memchr(text + i, '.', n) && !memchr(text + i, 'e', n) &&
                    !memchr(text + i, 'E', n) && integer_overflows(text + i, n);
            count += widen;
        }
        if (b) {
            cs_text_put(b, text + i, n);
            if (widen)
                cs_text_put(b, ".0", 2);
        }
        i += n;
    }
    return count;
}

json_t *cs_json_loads_stored(const char *text, size_t len, json_error_t *err)
{
    cs_text b = CS_TEXT_INIT;
    json_t *out;

    if (widen_integers(text, len, NULL) == 0)
        return json_loadb(text, len, JSON_DECODE_ANY, err);
    cs_text_put(&b, "", 0);
    widen_integers(text, len, &b);
    if (!b.ok) {
        free(b.p);
        if (err)
            snprintf(err->text, sizeof(err->text), "out of memory");
        return NULL;
    }
    out = json_loadb(b.p, b.len, JSON_DECODE_ANY, err);
    free(b.p);
    return out;
}

/* --- compacting as jansson would write what it read ------------------------------------ */

/* The length of the valid UTF-8 sequence at s (at most avail bytes) as jansson checks it: no
 * overlong form, no surrogate, nothing past U+10FFFF; 0 when invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    size_t n;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] < 0xC2 || s[0] > 0xF4)
        return 0;
    n = s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    if (n > avail)
        return 0;
    cp = s[0] & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Four hex digits at s as a number; -1 when they are not. */
static long hex4(const char *s, size_t avail)
{
    long v = 0;

    if (avail < 4)
        return -1;
    for (size_t i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;

        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The characters with a one-letter escape, and their letters, in the same order. */
static const char escaped[] = "\"\\\b\f\n\r\t", escape_letters[] = "\"\\bfnrt";

/* Code point cp of a string as jansson writes it. */
static void put_code_point(cs_text *b, unsigned long cp)
{
    const char *named = cp > 0 && cp < 0x80 ? strchr(escaped, (int)cp) : NULL;
    char seq[8];

    if (named) {
        seq[0] = '\\';
        seq[1] = escape_letters[named - escaped];
        cs_text_put(b, seq, 2);
        return;
    }
    if (cp < 0x20) {
        snprintf(seq, sizeof(seq), "\\u%04lX", cp);
        cs_text_put(b, seq, 6);
    } else if (cp < 0x80) {
        seq[0] = (char)cp;
        cs_text_put(b, seq, 1);
    } else if (cp < 0x800) {
        seq[0] = (char)(0xC0 | (cp >> 6));
        seq[1] = (char)(0x80 | (cp & 0x3F));
        cs_text_put(b, seq, 2);
    } else if (cp < 0x10000) {
        seq[0] = (char)(0xE0 | (cp >> 12));
        seq[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        seq[2] = (char)(0x80 | (cp & 0x3F));
        cs_text_put(b, seq, 3);
    } else {
        seq[0] = (char)(0xF0 | (cp >> 18));
        seq[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        seq[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        seq[3] = (char)(0x80 | (cp & 0x3F));
        cs_text_put(b, seq, 4);
    }
}

/* The string starting at text[*i] (its opening quote), written to b; *i moves past its closing
 * quote. False where jansson would refuse it. */
static bool compact_string(cs_text *b, const char *text, size_t len, size_t *i)
{
    size_t p = *i + 1, run = p;

    cs_text_put(b, "\"", 1);
    while (p < len) {
        unsigned char c = (unsigned char)text[p];
        const char *named;
        size_t n;
        long cp, low;

        if (c != '"' && c != '\\') {
            if (c < 0x20 || !(n = utf8_sequence((const unsigned char *)text + p, len - p)))
                return false;
            p += n; /* copied with the rest of the run */
            continue;
        }
        cs_text_put(b, text + run, p - run);
        if (c == '"') {
            cs_text_put(b, "\"", 1);
            *i = p + 1;
            return true;
        }
        if (p + 1 >= len)
            return false;
        if (text[p + 1] == 'u') {
            if ((cp = hex4(text + p + 2, len - p - 2)) <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* a high surrogate: its low one must follow */
                if (p + 7 >= len || text[p + 6] != '\\' || text[p + 7] != 'u' ||
                    (low = hex4(text + p + 8, len - p - 8)) < 0xDC00 || low > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
            p += 4;
        } else if (text[p + 1] == '/') {
            cp = '/';
        } else if (text[p + 1] && (named = strchr(escape_letters, text[p + 1]))) {
            cp = escaped[named - escape_letters];
        } else {
            return false;
        }
        put_code_point(b, (unsigned long)cp);
        p += 2;
        run = p;
    }
    return false; /* not closed */
}

/* True when the number token tok[0..n) is written back as it is: an integer of at most 18 digits
 * without a leading zero (not "-0"), or a real without an exponent of at most 15 significant
 * digits (any such decimal is the shortest text its double reads back from: DBL_DIG) whose
 * fraction has no trailing zero, save a fraction "0", and which is not below 1e-4 (where %g
 * would turn to an exponent). Everything else takes the long way through strtod. */
static bool number_as_is(const char *tok, size_t n)
{
    size_t i = tok[0] == '-', int_digits = 0, frac_digits = 0, frac_zeros = 0;

    while (i + int_digits < n && tok[i + int_digits] >= '0' && tok[i + int_digits] <= '9')
        int_digits++;
    if (int_digits == 0 || (int_digits > 1 && tok[i] == '0'))
        return false;
    i += int_digits;
    if (i == n) /* an integer */
        return int_digits <= 18 && !(tok[0] == '-' && tok[1] == '0');
    if (tok[i++] != '.')
        return false;
    while (i + frac_digits < n && tok[i + frac_digits] >= '0' && tok[i + frac_digits] <= '9')
        frac_digits++;
    if (frac_digits == 0 || i + frac_digits != n)
        return false;
    if (tok[n - 1] == '0')
        return frac_digits == 1 && int_digits <= 15;
    if (int_digits > 1 || tok[(tok[0] == '-')] != '0')
        return int_digits + frac_digits <= 15;
    while (frac_zeros < frac_digits && tok[i + frac_zeros] == '0')
        frac_zeros++;
    return frac_zeros <= 3 && frac_digits - frac_zeros <= 15;
}

char *cs_json_compact_stored(const char *text, size_t len)
{
    cs_text b = CS_TEXT_INIT;
    size_t first = 0;
    char tok[64];

    while (first < len && strchr(" \t\n\r", text[first]) && text[first])
        first++;

    /* json_dumps writes only an object or an array */
    if (first >= len || (text[first] != '{' && text[first] != '['))
        return NULL;
    cs_text_put(&b, "", 0);
    for (size_t i = 0; i < len && b.ok;) {
        char c = text[i];

        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
        } else if (c == '"') {
            if (!compact_string(&b, text, len, &i))
                b.ok = false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = 0;
            bool real;
            double v;

            while (i + n < len && strchr("-+0123456789.eE", text[i + n]) && text[i + n])
                n++;
            if (number_as_is(text + i, n)) {
                cs_text_put(&b, text + i, n);
                i += n;
                continue;
            }
            real = memchr(text + i, '.', n) || memchr(text + i, 'e', n) ||
                   memchr(text + i, 'E', n) || integer_overflows(text + i, n);
            errno = 0;
            if (n >= sizeof(tok)) {
                /* Longer than any number but an integer past 64 bits or a real: a real. */
                char *big = strndup(text + i, n);

                v = big ? strtod(big, NULL) : 0;
                if (!big || !real || (errno == ERANGE && isinf(v)))
                    b.ok = false;
                else
                    put_real(&b, v);
                free(big);
            } else {
                memcpy(tok, text + i, n);
                tok[n] = '\0';
                if (!real) {
                    char num[24]; /* as jansson writes the integer it read: "-0" is 0 */

                    cs_text_put(&b, num,
                                (size_t)snprintf(num, sizeof(num), "%lld", strtoll(tok, NULL, 10)));
                } else if (v = strtod(tok, NULL), errno == ERANGE && isinf(v)) {
                    b.ok = false;
                } else {
                    put_real(&b, v);
                }
            }
            i += n;
        } else {
            cs_text_put(&b, text + i++, 1);
        }
    }
    if (!b.ok) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
