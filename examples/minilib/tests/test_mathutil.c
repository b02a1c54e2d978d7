/* test_mathutil.c — tests of src/mathutil.c. */
#include "../src/mathutil.h"
#include "tap.h"

void test_mathutil(void) {
  CHECK_INT("gcd: common factor", gcd(12, 18), 6);
  CHECK_INT("gcd: with zero", gcd(0, 7), 7);
  CHECK_INT("is_prime: small primes", is_prime(2) && is_prime(3) && is_prime(7) && is_prime(13), 1);
  CHECK_INT("is_prime: one is not prime", is_prime(1), 0);
  CHECK_INT("is_prime: squares of primes", is_prime(9) || is_prime(25) || is_prime(49), 0);
  CHECK_INT("clamp: inside", clamp(5, 0, 10), 5);
  CHECK_INT("clamp: below and above", clamp(-3, 0, 10) + clamp(42, 0, 10), 10);
}
