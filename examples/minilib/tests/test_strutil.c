/* test_strutil.c — tests of src/strutil.c. */
#include "../src/strutil.h"
#include "tap.h"

void test_strutil(void) {
  char a[] = "hello";
  CHECK_STR("str_reverse: odd length", str_reverse(a), "olleh");
  char b[] = "abcd";
  CHECK_STR("str_reverse: even length", str_reverse(b), "dcba");
  char c[] = "x";
  CHECK_STR("str_reverse: one character", str_reverse(c), "x");
  CHECK_INT("str_count_words: single spaces", str_count_words("one two three"), 3);
  CHECK_INT("str_count_words: extra spaces", str_count_words("  spaced   out  "), 2);
  CHECK_INT("str_count_words: empty string", str_count_words(""), 0);
  char up[16];
  CHECK_STR("str_upper: letters", str_upper("MiniLib 1", up, sizeof up), "MINILIB 1");
  CHECK_STR("str_upper: truncates", str_upper("abcdef", up, 4), "ABC");
}
