/* gemm_avx512.h — placeholder replaced below */
static void gemm_install(eng__kernels *k) {
  (void)k;
}
