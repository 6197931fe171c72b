/* A strict logfmt parser for the tests (the grammar of go-logfmt, keys narrowed). */
#include "logfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(char *err, size_t size, size_t col, const char *why)
{
    snprintf(err, size, "column %zu: %s", col, why);
    return -1;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int logfmt_parse(const char *line, logfmt_pair *pairs, int max, char *err, size_t err_size)
{
    size_t i = 0;
    int n = 0;

    while (line[i]) {
        logfmt_pair *p;
        size_t k = 0, v = 0;

        if (n > 0) {
            if (line[i] != ' ')
                return bad(err, err_size, i, "pairs must be separated by a space");
            i++;
        }
        if (n == max)
            return bad(err, err_size, i, "too many pairs");
        p = &pairs[n];
        while ((line[i] >= 'a' && line[i] <= 'z') || (line[i] >= 'A' && line[i] <= 'Z') ||
               (line[i] >= '0' && line[i] <= '9') || line[i] == '_' || line[i] == '.' ||
               line[i] == '-') {
            if (k + 1 >= sizeof(p->key))
                return bad(err, err_size, i, "key too long");
            p->key[k++] = line[i++];
        }
        p->key[k] = '\0';
        if (k == 0)
            return bad(err, err_size, i, "expected a key");
        if (line[i] != '=')
            return bad(err, err_size, i, "expected '=' after the key");
        i++;
        if (line[i] == '"') {
            i++;
            for (;;) {
                unsigned char c = (unsigned char)line[i];

                if (c == '\0')
                    return bad(err, err_size, i, "unterminated quoted value");
                if (c < 0x20)
                    return bad(err, err_size, i, "control character in a quoted value");
                if (c == '"') {
                    i++;
                    break;
                }
                if (c == '\\') {
                    char e = line[i + 1];

                    i += 2;
                    switch (e) {
                    case '"':
                    case '\\':
                    case '/':
                        c = (unsigned char)e;
                        break;
                    case 'n':
                        c = '\n';
                        break;
                    case 'r':
                        c = '\r';
                        break;
                    case 't':
                        c = '\t';
                        break;
                    case 'b':
                        c = '\b';
                        break;
                    case 'f':
                        c = '\f';
                        break;
                    case 'u': {
                        int h[4];

                        for (int d = 0; d < 4; d++)
                            if ((h[d] = hex(line[i + d])) < 0)
                                return bad(err, err_size, i, "bad \\u escape");
                        i += 4;
                        c = (unsigned char)(h[2] * 16 + h[3]); /* the tests only need ASCII */
                        break;
                    }
                    default:
                        return bad(err, err_size, i - 1, "unknown escape");
                    }
                } else {
                    i++;
                }
                if (v + 1 >= sizeof(p->value))
                    return bad(err, err_size, i, "value too long");
                p->value[v++] = (char)c;
            }
            if (line[i] && line[i] != ' ')
                return bad(err, err_size, i, "text after a quoted value");
        } else {
            while (line[i] && line[i] != ' ') {
                unsigned char c = (unsigned char)line[i];

                if (c < 0x20 || c == '=' || c == '"' || c == 0x7f)
                    return bad(err, err_size, i, "unexpected character in a bare value");
                if (v + 1 >= sizeof(p->value))
                    return bad(err, err_size, i, "value too long");
                p->value[v++] = (char)c;
                i++;
            }
        }
        p->value[v] = '\0';
        n++;
    }
    if (n == 0)
        return bad(err, err_size, 0, "empty line");
    return n;
}

const char *logfmt_get(const logfmt_pair *pairs, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(pairs[i].key, key) == 0)
            return pairs[i].value;
    return NULL;
}

int logfmt_check_file(const char *path, int *lines, char *err, size_t err_size)
{
    static logfmt_pair pairs[LOGFMT_MAX_PAIRS];
    static char line[65536];
    FILE *f = fopen(path, "r");
    int bad_lines = 0;

    *lines = 0;
    if (!f) {
        snprintf(err, err_size, "%s: cannot be read", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        char why[256];
        int n;

        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        ++*lines;
        n = logfmt_parse(line, pairs, LOGFMT_MAX_PAIRS, why, sizeof(why));
        if (n > 0 && (!logfmt_get(pairs, n, "ts") || !logfmt_get(pairs, n, "level") ||
                      !logfmt_get(pairs, n, "program") || !logfmt_get(pairs, n, "msg"))) {
            n = -1;
            snprintf(why, sizeof(why), "no ts, level, program or msg");
        }
        if (n < 0 && bad_lines++ == 0)
            snprintf(err, err_size, "%s:%d: %s: %.300s", path, *lines, why, line);
    }
    fclose(f);
    return bad_lines;
}
