#include "ops.h"

static int vals[16];

int store_get(int k) { return vals[k & 15]; }

/* Static: it runs in every process that uses the table holding its address (main's too). */
static int bump(int x) { return x + 1; }
const op_fn store_ops[1] = { bump };
