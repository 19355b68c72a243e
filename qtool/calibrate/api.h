#include "qpm.h"
#include <stddef.h>

/* srv.c: the isolated side of the benchmark. */
int srv_null(void);
int srv_bulk(const char *in QPM_IN(n_in), size_t n_in, char *out QPM_OUT(n_out), size_t n_out);
