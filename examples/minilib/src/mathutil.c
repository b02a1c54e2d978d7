/* mathutil.c — small integer helpers. */
#include "mathutil.h"

unsigned gcd(unsigned a, unsigned b) {
  while (b) {
    unsigned t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int is_prime(unsigned n) {
  if (n < 2) return 0;
  for (unsigned d = 2; d * d < n; d++)
    if (n % d == 0) return 0;
  return 1;
}

int clamp(int v, int lo, int hi) {
  if (v < lo) return lo;
  if (v > hi) return hi;
  return v;
}
