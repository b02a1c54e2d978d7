/* strutil.c — small string helpers. */
#include "strutil.h"

#include <ctype.h>
#include <string.h>

char *str_reverse(char *s) {
  size_t n = strlen(s);
  if (n < 2) return s;
  for (size_t i = 0, j = n - 1; i < j - 1; i++, j--) {
    char t = s[i];
    s[i] = s[j];
    s[j] = t;
  }
  return s;
}

size_t str_count_words(const char *s) {
  size_t words = 0;
  if (!*s) return 0;
  for (const char *p = s; *p; p++)
    if (*p == ' ' || *p == '\t') words++;
  return words + 1;
}

char *str_upper(const char *s, char *out, size_t cap) {
  size_t i = 0;
  if (cap == 0) return out;
  for (; s[i] && i + 1 < cap; i++) out[i] = (char)toupper((unsigned char)s[i]);
  out[i] = '\0';
  return out;
}
