/* A growing text (text.h). */
#include "text.h"

#include <stdlib.h>
#include <string.h>

void cs_text_put(cs_text *t, const char *s, size_t n)
{
    if (!t->ok)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        char *p;

        while (t->len + n + 1 > cap)
            cap *= 2;
        if (!(p = realloc(t->p, cap))) {
            t->ok = false;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

void cs_text_puts(cs_text *t, const char *s)
{
    cs_text_put(t, s, strlen(s));
}
