#include "qpm.h"
#include <stdlib.h>
#include <string.h>

struct conn;

QPM_COMPONENT(pool) char *pool_name(void) { return strdup("pool"); }
QPM_COMPONENT(pool) QPM_RETURNS_STRING char *pool_name_ok(void) { return strdup("pool"); }
QPM_COMPONENT(pool) QPM_OPAQUE struct conn *pool_get(void) { return 0; }
QPM_COMPONENT(pool) int *pool_counts(void) { static int c[2]; return c; }
QPM_COMPONENT(pool) unsigned char *pool_digest(void) { static unsigned char d[32]; return d; }

int main(void)
{
    char *a = pool_name(), *b = pool_name_ok();
    int r = pool_get() == 0 && pool_counts() != 0 && pool_digest() != 0;
    free(a);
    free(b);
    return r;
}
