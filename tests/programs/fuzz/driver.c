/*
 * driver THREADS SECONDS: THREADS threads call every function of the target domain in turn for
 * SECONDS, checking what main can check whatever the domain answers: a call either returns, or
 * returns the plan's fault_value (-1) and leaves the caller's buffers exactly as they were
 * (a reply is used whole or not at all); no call takes longer than the watchdog allows.  Prints
 * the counts.  Built with AddressSanitizer, any memory error ends it with a report.
 */
#include "target.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int shared_turns;

static atomic_long calls, faulted, untouched_broken, slowest_us;
static double until;

int driver_echo(int x) { return x; }

/* Its argument comes from the domain, so it may be anything. */
static int twice(int x) { return (int)(2u * (unsigned)x); }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* A buffer handed to a call that faulted must be exactly as it was. */
static void expect_intact(const char *buf, size_t n, char fill)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != fill) {
            atomic_fetch_add(&untouched_broken, 1);
            return;
        }
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(long)arg;
    while (now() < until) {
        int which = rand_r(&seed) % 10;
        double t0 = now();
        int fault = 0;
        switch (which) {
        case 0:
            fault = target_add(1, 2) == -1;
            break;
        case 1: {
            int v[16];
            for (int i = 0; i < 16; i++)
                v[i] = i;
            fault = target_sum(v, 16) == -1;
            break;
        }
        case 2: {
            char out[64];
            memset(out, 'x', sizeof out);
            if (target_fill(out, sizeof out) == -1) {
                fault = 1;
                expect_intact(out, sizeof out, 'x');
            }
            break;
        }
        case 3: {
            double v[4] = {1, 2, 3, 4};
            target_scale(v, 4, 2.0);
            break;
        }
        case 4: {
            char s[16];
            memset(s, 'a', sizeof s - 1);
            s[sizeof s - 1] = '\0';
            if (target_upper(s) == -1) {
                fault = 1;
                expect_intact(s, sizeof s - 1, 'a');
            }
            break;
        }
        case 5: {
            char *g = target_greet("fuzz");
            fault = g == NULL;
            free(g);
            break;
        }
        case 6: {
            struct handle *h = target_open(7);
            fault = target_handle_id(h) == -1;     /* main never looks inside h */
            break;
        }
        case 7: {
            int ids[3] = {1, 2, 3};
            struct tags t = {3, ids};
            fault = target_tags(&t) == -1;
            break;
        }
        case 8:
            fault = target_each(3, twice) == -1;
            break;
        default:
            fault = target_ask_driver(5) == -1;
            break;
        }
        long us = (long)((now() - t0) * 1e6);
        long seen = atomic_load(&slowest_us);
        while (us > seen && !atomic_compare_exchange_weak(&slowest_us, &seen, us))
            ;
        atomic_fetch_add(&calls, 1);
        if (fault)
            atomic_fetch_add(&faulted, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    until = now() + (argc > 2 ? atof(argv[2]) : 5);
    pthread_t t[64];
    if (nthreads > 64)
        nthreads = 64;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(long)(i + 1));
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("alive calls=%ld faulted=%ld broken=%ld slowest_ms=%.1f\n", atomic_load(&calls),
           atomic_load(&faulted), atomic_load(&untouched_broken), atomic_load(&slowest_us) / 1e3);
    return 0;
}
