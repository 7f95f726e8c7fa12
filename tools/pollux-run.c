/* pollux-run — placeholder. */
#include <stdio.h>
int main(void) {
    fprintf(stderr, "pollux-run: not built yet\n");
    return 1;
}
