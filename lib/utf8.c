/* UTF-8 text under byte limits: one place that knows where a character starts and ends. */
#include "utf8.h"

#include <stdio.h>
#include <string.h>

/* True for the second, third or fourth byte of a character. */
static int continuation(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* The bytes of the character a lead byte starts (1 for a byte that starts none). */
static size_t char_bytes(unsigned char c)
{
    if (c >= 0xf0 && c <= 0xf7)
        return 4;
    if (c >= 0xe0)
        return 3;
    if (c >= 0xc0)
        return 2;
    return 1;
}

size_t cs_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += !continuation((unsigned char)s[i]);
    return n;
}

size_t cs_utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t n;

    if (len <= max)
        return len;
    /* s[max] is the first byte left out: back up to the start of its character. */
    n = max;
    while (n > 0 && continuation((unsigned char)s[n]))
        n--;
    return n;
}

size_t cs_utf8_trim(char *s)
{
    size_t len = strlen(s), start = len;

    while (start > 0 && continuation((unsigned char)s[start - 1]) && len - start < 3)
        start--;
    if (start == 0 || !(((unsigned char)s[start - 1]) & 0x80))
        return len; /* ends in ASCII, or no lead byte in reach: nothing to drop */
    start--;
    if (len - start < char_bytes((unsigned char)s[start]))
        s[len = start] = '\0';
    return len;
}

/* The length of the well-formed character at s, or 0 if none starts there. */
static size_t well_formed(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] < 0xc2 || s[0] > 0xf4)
        return 0;
    n = char_bytes(s[0]);
    if (s[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (s[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (s[0] == 0xf0)
        lo = 0x90; /* overlong */
    else if (s[0] == 0xf4)
        hi = 0x8f; /* over U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    /* A NUL is no continuation byte: the test stops at the end of the string. */
    for (size_t i = 2; i < n; i++)
        if (!continuation(s[i]))
            return 0;
    return n;
}

char *cs_utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p) {
        size_t n = well_formed(p);

        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
    return s;
}

size_t cs_utf8_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    int n;

    if (size == 0)
        return 0;
    n = vsnprintf(buf, size, fmt, ap);
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    if ((size_t)n < size)
        return (size_t)n;
    return cs_utf8_trim(buf);
}

size_t cs_utf8_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = cs_utf8_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
