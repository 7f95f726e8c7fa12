/* engine/quant.c — placeholder until the module lands. */
typedef int px_placeholder_quant;
