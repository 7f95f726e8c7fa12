/* cpu.c — CPU feature detection from cpuid and xgetbv, computed once.
 *
 * A feature counts only if the CPU has it and the OS saves the register
 * state it needs (XCR0: SSE+AVX for YMM; opmask+ZMM_Hi256+Hi16_ZMM for
 * AVX-512); otherwise the first SIMD instruction would fault. */
#include "cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

static px_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void detect(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
    bool f16c = c & (1u << 29);
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;   /* SSE and AVX state */
    bool zmm_os = (xcr0 & 0xe6) == 0xe6; /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b & (1u << 5);
    bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    bool vnni = c & (1u << 11);
    features.avx2 = ymm_os && avx2 && fma && f16c;
    features.avx512 = features.avx2 && zmm_os && f && dq && bw && vl;
    features.avx512vnni = features.avx512 && vnni;
#endif
}

const px_cpu_features *px_cpu_get(void) {
    pthread_once(&features_once, detect);
    return &features;
}

int px_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
