/* gemm_avx512.h — placeholder: vec_dot in a loop */
static eng__kernels table;
#define MM(NAME, TYPE)                                                                                           \
  static void NAME(int64_t n, const void *w, size_t wrow, int64_t nrows, const void *a, size_t arow, int T,       \
                   float *y, size_t ystride) {                                                                   \
    eng__mul_mat_generic(&table.t[TYPE], n, w, wrow, nrows, a, arow, T, y, ystride);                             \
  }
MM(mm_f32, ENG__T_F32)
MM(mm_f16, ENG__T_F16)
MM(mm_bf16, ENG__T_BF16)
MM(mm_q8_0, ENG__T_Q8_0)
MM(mm_q4_0, ENG__T_Q4_0)
MM(mm_q4_K, ENG__T_Q4_K)
MM(mm_q5_K, ENG__T_Q5_K)
MM(mm_q6_K, ENG__T_Q6_K)
static void gemm_install(eng__kernels *k) {
  k->mul_mat[ENG__T_F32] = mm_f32; k->mul_mat[ENG__T_F16] = mm_f16; k->mul_mat[ENG__T_BF16] = mm_bf16;
  k->mul_mat[ENG__T_Q8_0] = mm_q8_0; k->mul_mat[ENG__T_Q4_0] = mm_q4_0; k->mul_mat[ENG__T_Q4_K] = mm_q4_K;
  k->mul_mat[ENG__T_Q5_K] = mm_q5_K; k->mul_mat[ENG__T_Q6_K] = mm_q6_K;
}
