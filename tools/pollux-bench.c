/* pollux-bench — placeholder. */
#include <stdio.h>
int main(void) {
    fprintf(stderr, "pollux-bench: not built yet\n");
    return 1;
}
