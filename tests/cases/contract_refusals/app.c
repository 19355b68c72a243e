#include "store.h"
#include <string.h>

static int len(const char *s) { return (int)strlen(s); }

int main(void)
{
    struct rec r[2] = {{0, NULL}, {0, NULL}};
    struct rec g[2][2] = {{{0, NULL}, {0, NULL}}, {{0, NULL}, {0, NULL}}};
    return store_each_name(len) + store_fill_recs(r, 2) + store_update_recs(r) + (int)store_first().n +
           store_grid(g) + store_ok(r);
}
