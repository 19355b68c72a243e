/*
 * driver MODE ROUNDS [THREADS]: times calls through the generated stubs.
 *   null   ns per srv_null() call
 *   bulk   ns per srv_bulk() call with 4 KiB in and 8 KiB out
 *   threads  aggregate srv_null() calls per second from THREADS threads
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
    if (!strcmp(argv[1], "null")) {
        long sum = 0;
        for (long i = 0; i < rounds; i++)
            sum += srv_null();
        t1 = now();
        if (sum != rounds)
            return 1;
        printf("null %.1f\n", (t1 - t0) * 1e9 / rounds);
    } else if (!strcmp(argv[1], "bulk")) {
        static char in[4096], out[8192];
        for (long i = 0; i < rounds; i++) {
            in[0] = (char)i;
            if (srv_bulk(in, sizeof in, out, sizeof out) != (int)sizeof out || out[8191] != (char)i)
                return 1;
        }
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
