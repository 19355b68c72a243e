#include "qpm.h"

typedef int (*op_fn)(int x);
extern const op_fn ops[2];
extern const op_fn store_ops[1];
int store_get(int k);

/* Compiled into every unit that includes it: the call through ops[i] runs in the process of
 * whatever calls apply. */
static inline int apply(int i, int x) { return ops[i](x); }
