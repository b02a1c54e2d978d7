/* strutil.h — small string helpers. */
#ifndef MINILIB_STRUTIL_H
#define MINILIB_STRUTIL_H

#include <stddef.h>

/* Reverse s in place; returns s. */
char *str_reverse(char *s);
/* Number of words in s: runs of characters other than spaces and tabs. */
size_t str_count_words(const char *s);
/* Copy s into out (capacity cap) with upper-case ASCII letters; returns out. */
char *str_upper(const char *s, char *out, size_t cap);

#endif
