/* The component a hostile domain stands in for, with a crossing of each kind. */
#include "qpm.h"
#include <stddef.h>

struct tags { size_t n; const int *ids QPM_COUNT(n); };

extern int shared_turns QPM_SHARED;     /* travels with every call (defined in driver.c) */
struct handle;

int target_add(int a, int b);
long target_sum(const int *v QPM_IN(n), size_t n);
int target_fill(char *out QPM_OUT(cap), size_t cap);
void target_scale(double *v QPM_INOUT(n), size_t n, double by);
int target_upper(char *s QPM_STRING);
QPM_RETURNS_STRING char *target_greet(const char *who QPM_STRING);
QPM_OPAQUE struct handle *target_open(int id);
int target_handle_id(struct handle *h QPM_OPAQUE);
int target_tags(const struct tags *t);
int target_each(int n, int (*fn)(int) QPM_CALLBACK);
int target_ask_driver(int x);

/* driver.c: the main program; called back from the target. */
int driver_echo(int x);
