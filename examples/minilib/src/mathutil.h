/* mathutil.h — small integer helpers. */
#ifndef MINILIB_MATHUTIL_H
#define MINILIB_MATHUTIL_H

/* Greatest common divisor of a and b (both >= 0); gcd(0, 0) == 0. */
unsigned gcd(unsigned a, unsigned b);
/* 1 when n is a prime number, else 0. */
int is_prime(unsigned n);
/* v limited to [lo, hi] (lo <= hi). */
int clamp(int v, int lo, int hi);

#endif
