/* engine/pool.c — placeholder until the module lands. */
typedef int px_placeholder_pool;
