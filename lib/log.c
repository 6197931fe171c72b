/* Logging to stderr as logfmt or JSON, one write per line so threads and processes do not
 * interleave, every line redacted. */
#include "log.h"

#include "redact.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cs_log_threshold = CS_LOG_INFO;
static const char *log_program = "casestream";
static int log_format = CS_LOG_LOGFMT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"logfmt", "json"};

void cs_log_init(const char *program)
{
    if (program)
        log_program = program;
}

bool cs_log_level_parse(const char *name, int *out)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

bool cs_log_format_parse(const char *name, int *out)
{
    for (int i = 0; i < (int)(sizeof(format_names) / sizeof(format_names[0])); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

void cs_log_set_format(int format)
{
    log_format = format == CS_LOG_JSON ? CS_LOG_JSON : CS_LOG_LOGFMT;
}

/* ---- rendering ------------------------------------------------------------------------- */

typedef struct line {
    char *buf;
    size_t len, cap; /* cap: content limit, below the room kept for the line's end */
    int format;
    bool full;
} line;

static bool put(line *l, const char *s, size_t n)
{
    if (l->full || l->len + n > l->cap) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* Length of the valid UTF-8 character at s[0..n), or 0 when it is not one. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

/* Writes a value: quoted and escaped when the format needs it, cut between characters when
 * the line is full (the closing quote always fits: cap keeps room for it). */
static void put_value(line *l, const char *s, size_t n)
{
    bool quoted = l->format == CS_LOG_JSON || needs_quotes(s, n);
    size_t i = 0;

    if (l->full)
        return;
    if (quoted) {
        if (l->len + 2 > l->cap) {
            l->full = true;
            return;
        }
        l->buf[l->len++] = '"';
        l->cap--; /* room for the closing quote */
    }
    while (i < n) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t clen = utf8_char(p, n - i);
        char esc[8];
        const char *out = (const char *)p;
        size_t olen = clen;

        if (clen == 0) {
            out = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
            olen = 3;
            clen = 1;
        } else if (clen == 1 && (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')) {
            out = esc;
            if (*p == '"' || *p == '\\')
                olen = (size_t)snprintf(esc, sizeof(esc), "\\%c", *p);
            else if (*p == '\n')
                olen = (size_t)snprintf(esc, sizeof(esc), "\\n");
            else if (*p == '\r')
                olen = (size_t)snprintf(esc, sizeof(esc), "\\r");
            else if (*p == '\t')
                olen = (size_t)snprintf(esc, sizeof(esc), "\\t");
            else
                olen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        }
        if (!put(l, out, olen))
            break;
        i += clen;
    }
    if (quoted) {
        l->cap++;
        l->buf[l->len++] = '"';
    }
}

static void put_field(line *l, const char *key, size_t klen, const char *v, size_t vlen)
{
    if (l->full || l->len + klen + 6 > l->cap) {
        l->full = true;
        return;
    }
    if (l->format == CS_LOG_JSON) {
        put(l, l->len > 1 ? ",\"" : "\"", l->len > 1 ? 2 : 1);
        put(l, key, klen);
        put(l, "\":", 2);
    } else {
        if (l->len > 0)
            put(l, " ", 1);
        put(l, key, klen);
        put(l, "=", 1);
    }
    put_value(l, v, vlen);
}

static bool key_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool key_char(char c)
{
    return key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Length of the key of a field starting at s[i] (a word `key=` after a space or at the
 * start), or 0. */
static size_t field_at(const char *s, size_t i)
{
    size_t k = i;

    if ((i > 0 && s[i - 1] != ' ') || !key_start(s[i]))
        return 0;
    while (key_char(s[k]))
        k++;
    return s[k] == '=' ? k - i : 0;
}

/* The start of the next field at or after i, or the end of s. */
static size_t next_field(const char *s, size_t i)
{
    while (s[i] && !field_at(s, i))
        i++;
    return i;
}

/* Folds every line break (with the blanks around it) and tab into one space, in place, and
 * trims blanks at both ends. */
static void fold(char *s)
{
    size_t r = 0, w = 0;

    while (s[r] == ' ' || s[r] == '\n' || s[r] == '\r' || s[r] == '\t')
        r++;
    while (s[r]) {
        char c = s[r];

        if (c == '\n' || c == '\r' || c == '\t') {
            while (w > 0 && s[w - 1] == ' ')
                w--;
            while (s[r] == '\n' || s[r] == '\r' || s[r] == '\t' || s[r] == ' ')
                r++;
            s[w++] = ' ';
            continue;
        }
        s[w++] = c;
        r++;
    }
    while (w > 0 && s[w - 1] == ' ')
        w--;
    s[w] = '\0';
}

static size_t trim_end(const char *s, size_t from, size_t to)
{
    while (to > from && s[to - 1] == ' ')
        to--;
    return to;
}

size_t cs_log_render(char *out, size_t size, int format, const char *ts, int level,
                     const char *program, const char *message)
{
    char text[CS_LOG_LINE_MAX];
    line l = {out, 0, 0, format == CS_LOG_JSON ? CS_LOG_JSON : CS_LOG_LOGFMT, false};
    size_t i, end;

    if (size < 8) {
        if (size > 0)
            out[0] = '\0';
        return 0;
    }
    l.cap = size - 4; /* "}\n" and the NUL */
    if (level < CS_LOG_ERROR)
        level = CS_LOG_ERROR;
    if (level > CS_LOG_DEBUG)
        level = CS_LOG_DEBUG;
    cs_redact(text, sizeof(text), message);
    fold(text);
    if (l.format == CS_LOG_JSON)
        put(&l, "{", 1);
    put_field(&l, "ts", 2, ts, strlen(ts));
    put_field(&l, "level", 5, level_names[level], strlen(level_names[level]));
    put_field(&l, "program", 7, program, strlen(program));
    end = next_field(text, 0);
    put_field(&l, "msg", 3, text, trim_end(text, 0, end));
    for (i = end; text[i] && !l.full;) {
        size_t klen = field_at(text, i), v = i + klen + 1, vend = 0, next = 0;

        if (text[v] == '"') {
            /* A quoted value ends at a quote followed by the end or by the next field. */
            for (size_t q = v + 1; text[q] && !vend; q++) {
                size_t a = q + 1;

                if (text[q] != '"')
                    continue;
                while (text[a] == ' ')
                    a++;
                if (text[a] == '\0' || (a > q + 1 && field_at(text, a))) {
                    vend = q;
                    next = a;
                }
            }
            if (vend) {
                put_field(&l, text + i, klen, text + v + 1, vend - v - 1);
                i = next;
                continue;
            }
        }
        next = next_field(text, v);
        put_field(&l, text + i, klen, text + v, trim_end(text, v, next) - v);
        i = next;
    }
    if (l.format == CS_LOG_JSON)
        l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    l.buf[l.len] = '\0';
    return l.len;
}

size_t cs_log_line(char *out, size_t size, int level, const char *message)
{
    char ts[40];
    struct timespec now;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000L);
    return cs_log_render(out, size, log_format, ts, level, log_program, message);
}

void cs_log_write(int level, const char *fmt, ...)
{
    char message[CS_LOG_LINE_MAX], out[CS_LOG_LINE_MAX + 64];
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    n = cs_log_line(out, sizeof(out), level, message);
    /* One write(2) per line keeps lines whole across threads and processes. */
    if (write(STDERR_FILENO, out, n) < 0)
        return;
}
