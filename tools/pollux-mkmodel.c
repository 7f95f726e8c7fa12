/* pollux-mkmodel — placeholder. */
#include <stdio.h>
int main(void) {
    fprintf(stderr, "pollux-mkmodel: not built yet\n");
    return 1;
}
