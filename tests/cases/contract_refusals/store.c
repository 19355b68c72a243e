#include "store.h"

static const int one[1] = {1};

int store_each_name(int (*fn)(const char *)) { return fn("store"); }
int store_fill_recs(struct rec *a, size_t n) { for (size_t i = 0; i < n; i++) a[i].n = 0; return (int)n; }
int store_update_recs(struct rec a[2]) { a[0].n = 0; return (int)a[1].n; }
struct rec store_first(void) { struct rec r = {1, one}; return r; }
int store_grid(const struct rec g[2][2]) { return (int)g[1][1].n; }
int store_ok(const struct rec a[2]) { return (int)(a[0].n + a[1].n); }
