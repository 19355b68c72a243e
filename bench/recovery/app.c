/*
 * app THREADS FAULTS: THREADS threads call worker_work in a loop while the main thread makes
 * worker_crash fault FAULTS times, one every 40 ms.  For each fault it prints the milliseconds
 * from issuing the crashing call to its return (the domain dead, restarted and serving again),
 * and before it the round trip of a call that does not fault, under the same load; then the
 * count of wrong answers and of calls made.
 */
#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int stop;
static atomic_long calls, wrong;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *caller(void *arg)
{
    int x = (int)(long)arg;
    while (!atomic_load(&stop)) {
        if (worker_work(x) != x * 3 + 1)
            atomic_fetch_add(&wrong, 1);
        atomic_fetch_add(&calls, 1);
        x++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 200, faults = argc > 2 ? atoi(argv[2]) : 20;
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], &attr, caller, (void *)(long)(i * 1000000));
    struct timespec gap = {0, 20000000};
    nanosleep(&gap, NULL);
    for (int i = 0; i < faults; i++) {
        /* A call that does not fault, under the same load: what any call waits for its turn. */
        double before = now_ms();
        int ok = worker_work(i) == i * 3 + 1;
        printf("normal %.3f %d\n", now_ms() - before, ok);
        nanosleep(&gap, NULL);
        double start = now_ms();
        int r = worker_crash(1);
        printf("fault %.3f %d\n", now_ms() - start, r);
        nanosleep(&gap, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("wrong %ld calls %ld\n", atomic_load(&wrong), atomic_load(&calls));
    return 0;
}
