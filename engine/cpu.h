/* cpu.h — what the CPU can run, read once from cpuid.
 * Owns: nothing. Any thread (results are computed once, then constant). */
#ifndef PX_CPU_H
#define PX_CPU_H

#include <stdbool.h>

typedef struct px_cpu_features {
    bool avx2;       /* AVX2 + FMA + F16C, and the OS saves YMM state */
    bool avx512;     /* AVX-512 F/BW/VL/DQ, and the OS saves ZMM state */
    bool avx512vnni; /* AVX-512 VNNI (vpdpbusd) */
} px_cpu_features;

const px_cpu_features *px_cpu_get(void);

/* The spin-wait hint (pause) for loops that wait on another thread. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define px_cpu_relax() _mm_pause()
#else
#define px_cpu_relax() ((void)0)
#endif
/* Online CPUs (at least 1). */
int px_cpu_count(void);

#endif
