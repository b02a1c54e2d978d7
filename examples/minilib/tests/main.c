/* main.c — runs every test and prints TAP; exits 1 when any test failed. */
#include "tap.h"

int tap_count, tap_failed;

int main(void) {
  printf("TAP version 13\n");
  test_strutil();
  test_mathutil();
  printf("1..%d\n", tap_count);
  if (tap_failed) printf("# %d of %d tests failed\n", tap_failed, tap_count);
  return tap_failed ? 1 : 0;
}
