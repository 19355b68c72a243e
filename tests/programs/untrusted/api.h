/* A small program whose peer domain the tests replace with crafted messages. */
#include "qpm.h"
#include <stddef.h>

/* Travels with every crossing call (defined in app.c). */
extern int epoch QPM_SHARED;

struct rec { size_t n; const int *v QPM_COUNT(n); };

/* peer.c: isolated in peer_iso. */
int peer_fill(char *out QPM_OUT(cap), size_t cap);
int peer_upper(char *s QPM_STRING);
QPM_RETURNS_STRING char *peer_name(int i);
long peer_sum(const struct rec *a QPM_IN(n), size_t n);
int peer_each(int n, int (*fn)(int) QPM_CALLBACK);
double peer_map(double x, double (*fn)(double) QPM_CALLBACK);
int peer_logged(int x);

/* app.c: stays in main; called from peer. */
int app_log(int x);
