/* engine/kernels_ref.c — placeholder until the module lands. */
typedef int px_placeholder_kernels_ref;
