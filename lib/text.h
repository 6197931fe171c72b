/* A growing NUL-terminated text, for output written piece by piece. */
#ifndef CS_TEXT_H
#define CS_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Start from CS_TEXT_INIT. p is NULL until something is put; ok turns false
 * when a growth fails, after which puts do nothing; the owner frees p. */
typedef struct cs_text {
    char *p;
    size_t len, cap;
    bool ok;
} cs_text;

#define CS_TEXT_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, true                                                                           \
    }

/* Appends s[0..n). */
void cs_text_put(cs_text *t, const char *s, size_t n);

/* Appends the string s. */
void cs_text_puts(cs_text *t, const char *s);

#endif
