#include "api.h"

#include <string.h>
#include <unistd.h>

static long rec_sum(const struct rec *r)
{
    long s = r->tag ? (long)strlen(r->tag) : 0;
    for (size_t i = 0; i < r->n; i++)
        s += r->v[i];
    return s;
}

static long recs_sum(const struct rec *a, size_t n)
{
    long s = 0;
    for (size_t i = 0; i < n; i++)
        s += rec_sum(&a[i]);
    return s;
}

long store_sum_array(const struct rec a[4]) { return recs_sum(a, 4); }
long store_sum_marked(struct rec a[3]) { return recs_sum(a, 3); }
long store_sum_counted(const struct rec *a, size_t n) { return recs_sum(a, n); }

long store_sum_batch(const struct batch *b)
{
    return recs_sum(b->fixed, 2) + (b->more ? recs_sum(b->more, b->nmore) : 0);
}

long store_sum_batch_value(int bias, struct batch b) { return bias + store_sum_batch(&b); }
void store_double(int v[3])
{
    for (int i = 0; i < 3; i++)
        v[i] *= 2;
}

long store_sum_ints(const int v[5]) { return v[0] + v[1] + v[2] + v[3] + v[4]; }

int store_pid(void) { return (int)getpid(); }
