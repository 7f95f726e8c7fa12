/* engine/kernels_avx512.c — placeholder until the module lands. */
typedef int px_placeholder_kernels_avx512;
