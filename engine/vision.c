/* engine/vision.c — placeholder until the module lands. */
typedef int px_placeholder_vision;
