#include "ops.h"

static int twice(int x) { return 2 * x; }
const op_fn ops[2] = { twice, store_get };

/* A static function runs where its callers run, main's domain here; a static target runs where
 * its address is taken, and calling it never crosses. */
static int run(op_fn f, int x) { return f(x); }

int main(void)
{
    return apply(0, 1) + apply(1, 2) + run(twice, 3) + run(store_get, 4) + store_ops[0](5);
}
