/* Crossings the split build cannot copy: check refuses each at its parameter (or function). */
#include "qpm.h"
#include <stddef.h>

struct rec { size_t n; const int *v QPM_COUNT(n); };

int store_each_name(int (*fn)(const char *) QPM_CALLBACK);   /* a callback taking a string */
int store_fill_recs(struct rec *a QPM_OUT(n), size_t n);      /* structs with pointers, out */
int store_update_recs(struct rec a[2]);                        /* ... in and out by default */
struct rec store_first(void);                                  /* ... returned */
int store_grid(const struct rec g[2][2]);                      /* ... in rows of an array */
int store_ok(const struct rec a[2]);                           /* ... in only: fine */
