/*
 * driver MODE ROUNDS [THREADS]: times calls through the generated stubs.
 *   null   ns per srv_null() call
 *   bulk   ns per srv_bulk() call with 4 KiB in and 8 KiB out
 *   threads  aggregate srv_null() calls per second from THREADS threads
 *   null-windows, bulk-windows  the null or bulk call in the steady state: after WARM_MS of
 *            calls (default 50), WINDOWS windows of ROUNDS calls each (default 15); prints the
 *            median, fastest and slowest window in ns per call
 *            (driver null-windows ROUNDS [WINDOWS [WARM_MS]])
 */
#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long rounds;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* One null call, its answer checked (a call through a pointer to srv_null itself would cross the
 * boundary through a pointer, which qtool refuses). */
static int null_once(void)
{
    return srv_null() == 1;
}

/* One bulk call, its answer checked: 1, or 0 when it is wrong. */
static int bulk_once(void)
{
    static char in[4096], out[8192];
    static unsigned i;
    in[0] = (char)++i;
    return srv_bulk(in, sizeof in, out, sizeof out) == (int)sizeof out && out[8191] == in[0];
}

static void *caller(void *arg)
{
    long sum = 0;
    for (long i = 0; i < rounds; i++)
        sum += srv_null();
    return (void *)(sum == rounds ? NULL : arg);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    rounds = atol(argv[2]);
    srv_null();     /* the first call claims the thread's channel */
    double t0 = now(), t1;
    if (!strcmp(argv[1], "null-windows") || !strcmp(argv[1], "bulk-windows")) {
        /* A run's first milliseconds, and its first after a pause, are not the steady state:
         * both threads must be running on two cores before a call costs only its crossing. */
        int (*call)(void) = argv[1][0] == 'n' ? null_once : bulk_once;
        int n = argc > 3 ? atoi(argv[3]) : 15, warm_ms = argc > 4 ? atoi(argv[4]) : 50;
        double w[256];
        if (n < 1 || n > 256)
            return 2;
        for (double end = now() + warm_ms / 1e3; now() < end;)
            for (int i = 0; i < 100; i++)
                if (!call())
                    return 1;
        for (int k = 0; k < n; k++) {
            double a = now();
            for (long i = 0; i < rounds; i++)
                if (!call())
                    return 1;
            w[k] = (now() - a) * 1e9 / rounds;
            for (int j = k; j > 0 && w[j] < w[j - 1]; j--) {
                double x = w[j];
                w[j] = w[j - 1];
                w[j - 1] = x;
            }
        }
        printf("%s %.1f %.1f %.1f\n", argv[1], w[n / 2], w[0], w[n - 1]);
        return 0;
    }
    if (!strcmp(argv[1], "null")) {
        long sum = 0;
        for (long i = 0; i < rounds; i++)
            sum += srv_null();
        t1 = now();
        if (sum != rounds)
            return 1;
        printf("null %.1f\n", (t1 - t0) * 1e9 / rounds);
    } else if (!strcmp(argv[1], "bulk")) {
        for (long i = 0; i < rounds; i++)
            if (!bulk_once())
                return 1;
        t1 = now();
        printf("bulk %.1f\n", (t1 - t0) * 1e9 / rounds);
    } else {
        int n = argc > 3 ? atoi(argv[3]) : 8;
        pthread_t t[64];
        for (long i = 0; i < n; i++)
            pthread_create(&t[i], NULL, caller, (void *)(i + 1));
        int bad = 0;
        for (int i = 0; i < n; i++) {
            void *r;
            pthread_join(t[i], &r);
            bad += r != NULL;
        }
        t1 = now();
        if (bad)
            return 1;
        printf("threads %.0f\n", n * rounds / (t1 - t0));
    }
    return 0;
}
