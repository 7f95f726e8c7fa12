/* engine/kernels_avx2.c — placeholder until the module lands. */
typedef int px_placeholder_kernels_avx2;
