/* image.c — tests of api/image.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_image(void) {
    return suite_create("image");
}
