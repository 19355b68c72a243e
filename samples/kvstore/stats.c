#include "qpm.h"
QPM_FILE_COMPONENT(stats);

/*
 * stats.c - request counters of the kvstore server.
 *
 * The counters are lock-free atomics because every request bumps at least one of them
 * from its own connection thread; relaxed ordering is enough since each counter is
 * independent and a STATS reply is only a snapshot.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdatomic.h>
#include <stdio.h>

#include "kvstore.h"

/* Zero-initialised storage makes the counters valid before stats_init() ever runs. */
static atomic_ullong counters[KV_STAT_KINDS];

void stats_init(void)
{
    for (int i = 0; i < KV_STAT_KINDS; i++)
        atomic_store_explicit(&counters[i], 0, memory_order_relaxed);
}

void stats_count(int what)
{
    /* An unknown kind comes from a caller bug; ignoring it keeps the other counts sane. */
    if (what < 0 || what >= KV_STAT_KINDS)
        return;
    atomic_fetch_add_explicit(&counters[what], 1, memory_order_relaxed);
}

static unsigned long long counter(enum kv_stat what)
{
    return atomic_load_explicit(&counters[what], memory_order_relaxed);
}

int stats_format(char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return -1;
    int len = snprintf(out, cap, "gets=%llu sets=%llu dels=%llu hits=%llu misses=%llu",
                       counter(KV_STAT_GET), counter(KV_STAT_SET), counter(KV_STAT_DEL),
                       counter(KV_STAT_HIT), counter(KV_STAT_MISS));
    if (len < 0 || (size_t)len >= cap)
        return -1;
    return len;
}
