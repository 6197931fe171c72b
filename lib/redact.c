/* The one redaction rule for logs, health texts, metrics and error messages. */
#include "redact.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

typedef struct sink {
    char *buf;
    size_t len, size;
} sink;

static void put(sink *s, const char *p, size_t n)
{
    while (n-- > 0 && s->len + 1 < s->size)
        s->buf[s->len++] = *p++;
}

static bool key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

/* Where a URL's authority ends: at the path, query, fragment, a space or a quote. */
static bool authority_end(char c)
{
    return c == '\0' || c == '/' || c == '?' || c == '#' || isspace((unsigned char)c) || c == '"' ||
           c == '\'' || c == '<' || c == '>' || c == ')' || c == ',';
}

static bool secret_key(const char *key, size_t len)
{
    static const char *const endings[] = {"password", "passwd",  "secret", "api_key",
                                          "apikey",   "api-key", "token",  NULL};

    for (size_t i = 0; endings[i]; i++) {
        size_t n = strlen(endings[i]);

        if (len >= n && strncasecmp(key + len - n, endings[i], n) == 0)
            return true;
    }
    return false;
}

/* At in[i] == ':' of "://": writes the scheme separator and a masked userinfo; returns the
 * index after what was consumed. */
static size_t url_authority(sink *s, const char *in, size_t i)
{
    size_t start = i + 3, end = start, at = 0, colon = 0;

    put(s, in + i, 3);
    while (!authority_end(in[end])) {
        if (in[end] == '@')
            at = end;
        end++;
    }
    if (!at)
        return start;
    for (size_t k = start; k < at; k++) {
        if (in[k] == ':') {
            colon = k;
            break;
        }
    }
    if (colon) {
        put(s, in + start, colon + 1 - start);
        put(s, CS_REDACTED, strlen(CS_REDACTED));
    } else {
        put(s, CS_REDACTED, strlen(CS_REDACTED));
    }
    return at; /* the '@' and the host follow as they are */
}

/* At in[i] == '=' after a secret key: writes '=' and a masked value; returns the index after
 * the value. */
static size_t secret_value(sink *s, const char *in, size_t i)
{
    size_t j = i + 1;

    while (in[j] == ' ')
        j++;
    put(s, in + i, j - i); /* '=' and the blanks after it */
    if (in[j] == '\'' || in[j] == '"') {
        char q = in[j++];

        while (in[j] && in[j] != q) {
            if (in[j] == '\\' && in[j + 1])
                j++;
            j++;
        }
        put(s, &q, 1);
        put(s, CS_REDACTED, strlen(CS_REDACTED));
        if (in[j] == q) {
            put(s, &q, 1);
            j++;
        }
        return j;
    }
    while (in[j] && !isspace((unsigned char)in[j]) && in[j] != '&' && in[j] != ',' &&
           in[j] != ';' && in[j] != '"' && in[j] != '\'')
        j++;
    put(s, CS_REDACTED, strlen(CS_REDACTED));
    return j;
}

size_t cs_redact(char *out, size_t size, const char *in)
{
    sink s = {out, 0, size};
    size_t i = 0, key_start = 0;
    bool in_key = false;

    if (size == 0)
        return 0;
    while (in[i]) {
        char c = in[i];

        if (c == ':' && in[i + 1] == '/' && in[i + 2] == '/') {
            i = url_authority(&s, in, i);
            in_key = false;
            continue;
        }
        if (key_char(c)) {
            if (!in_key)
                key_start = i;
            in_key = true;
        } else {
            if (in_key) {
                size_t key_end = i, j = i;

                while (in[j] == ' ')
                    j++;
                if (in[j] == '=' && secret_key(in + key_start, key_end - key_start)) {
                    put(&s, in + i, j - i);
                    i = secret_value(&s, in, j);
                    in_key = false;
                    continue;
                }
            }
            in_key = false;
        }
        put(&s, &c, 1);
        i++;
    }
    out[s.len] = '\0';
    return s.len;
}
