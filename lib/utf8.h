/* UTF-8 text under byte limits: cuts that never split a character, lengths in characters. */
#ifndef CS_UTF8_H
#define CS_UTF8_H

#include <stdarg.h>
#include <stddef.h>

/* The number of characters (code points) in the UTF-8 text s[0..len), as
 * PostgreSQL's varchar(n) counts them. */
size_t cs_utf8_chars(const char *s, size_t len);

/* The length of the longest prefix of the UTF-8 text s[0..len) that is at
 * most max bytes and does not end inside a character: what "%.*s" may print
 * of s without splitting one. */
size_t cs_utf8_prefix(const char *s, size_t len, size_t max);

/* Drops an incomplete character from the end of the NUL-terminated s, which
 * is what a byte-bounded copy such as snprintf leaves when it cuts inside
 * one. Returns the new length. */
size_t cs_utf8_trim(char *s);

/* Replaces, in the NUL-terminated s, each byte that is not part of a
 * well-formed UTF-8 sequence (as PostgreSQL checks it: no overlong forms, no
 * surrogates, nothing over U+10FFFF) with '?'. For text that quotes bytes
 * cut anywhere, not only at its end: jansson's error text quotes the token it
 * stopped in ("invalid escape near '\"\xd5\x9c+\\\xd5'"). Returns s. */
char *cs_utf8_repair(char *s);

/* snprintf into buf[size] that, when it has to cut, cuts before a character
 * rather than inside it, so UTF-8 arguments give UTF-8 text. Returns the
 * length of what buf holds. */
size_t cs_utf8_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t cs_utf8_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
