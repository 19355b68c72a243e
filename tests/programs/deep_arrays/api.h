/* Arrays of structs whose pointer fields say what they point to, crossing in every form. */
#include "qpm.h"
#include <stddef.h>

struct rec { size_t n; const int *v QPM_COUNT(n); const char *tag QPM_STRING; };
/* Structs with pointers inside structs: an array field, and a counted pointer field. */
struct batch { struct rec fixed[2]; size_t nmore; const struct rec *more QPM_COUNT(nmore); };

/* store.c: isolated.  No QPM_SHARED global, and every deep argument comes last. */
long store_sum_array(const struct rec a[4]);             /* an array parameter: QPM_IN(4) */
long store_sum_marked(struct rec a[3] QPM_IN(3));        /* not const, marked in */
long store_sum_counted(const struct rec *a QPM_IN(n), size_t n);
long store_sum_batch(const struct batch *b);
long store_sum_batch_value(int bias, struct batch b);
void store_double(int v[3]);                              /* plain arrays: QPM_INOUT(3) ... */
long store_sum_ints(const int v[5]);                      /* ... and QPM_IN(5) */
int store_pid(void);
