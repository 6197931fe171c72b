/* Shortest round-trip reals in jansson's compact output. */
#include "jsondump.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the shortest %g form of v that strtod reads back as v, marked as a
 * real as jansson does ("3.0", not "3"). Returns its length. */
static size_t shortest_real(double v, char *out, size_t size)
{
    int n = 0;

    for (int p = 1; p <= 17; p++) {
        n = snprintf(out, size, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strpbrk(out, ".eEn") && (size_t)n + 2 < size) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    return (size_t)n;
}

char *cs_json_dumps(const json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT), *out;
    size_t len, o = 0;
    bool in_string = false;

    if (!text)
        return NULL;
    len = strlen(text);
    if (!(out = malloc(len * 2 + 32))) {
        free(text);
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        char c = text[i];

        if (in_string) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = text[++i];
            else if (c == '"')
                in_string = false;
            i++;
        } else if (c == '"') {
            in_string = true;
            out[o++] = text[i++];
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t end = i + strspn(text + i, "-+0123456789.eE");
            bool real = memchr(text + i, '.', end - i) || memchr(text + i, 'e', end - i) ||
                        memchr(text + i, 'E', end - i);

            if (real) {
                o += shortest_real(strtod(text + i, NULL), out + o, 32);
            } else {
                memcpy(out + o, text + i, end - i);
                o += end - i;
            }
            i = end;
        } else {
            out[o++] = text[i++];
        }
    }
    out[o] = '\0';
    free(text);
    return out;
}
