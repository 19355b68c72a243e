#include "qpm.h"

int store_put(int k, int v);
int store_get(int k);

/* Compiled into net.c and store.c alike: the calls kv_put_twice makes from net.c cross to the
 * store's domain, its calls from store.c stay there. */
static inline int kv_clamp(int v) { return v < 0 ? 0 : v; }
static inline int kv_put_twice(int k, int v) { return store_put(k, kv_clamp(v)) + store_put(k + 1, v); }
