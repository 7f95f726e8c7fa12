/* kernels_avx2.c — the AVX2 + FMA + F16C kernel set (built with -mavx2 -mfma
 * -mf16c, chosen at run time from cpuid). Integer dots use vpmaddubsw: every
 * quant here is unsigned and small enough (<= 63, or |q8_0| with the sign
 * moved onto x) that pair sums stay below 2^15. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"

/* acc + per-dword sums of a (u8) * b (s8). */
static inline __attribute__((always_inline)) __m256i mul_sum_us8(__m256i acc, __m256i a,
                                                                 __m256i b) {
    __m256i p = _mm256_maddubs_epi16(a, b);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* acc + per-dword sums of the 16-bit products p * sv. */
static inline __attribute__((always_inline)) __m256i madd16_acc(__m256i acc, __m256i p,
                                                                __m256i sv) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, sv));
}

#include "kernels_x86.h"

const px_kernels px__kernels_avx2 = {
    .name = "avx2",
    PX_X86_TABLE_COMMON,
};

#else
typedef int px_kernels_avx2_unused;
#endif
