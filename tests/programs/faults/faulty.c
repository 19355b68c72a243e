#include "faulty.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int inits;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void faulty_init(void) { inits++; }
int faulty_inits(void) { return inits; }
int faulty_pid(void) { return (int)getpid(); }
int faulty_ok(int x) { return x + 1; }

int faulty_null(int x)
{
    int *volatile p = NULL;
    return *p + x;      /* a real NULL dereference */
}

int faulty_abort(void)
{
    abort();
}

int faulty_overflow(int depth)
{
    volatile char pad[1024];
    pad[0] = (char)depth;
    if (depth < 0)      /* never: the recursion only ends when the stack runs out */
        return 0;
    return faulty_overflow(depth + 1) + pad[0];
}

int faulty_deadlock(void)
{
    pthread_mutex_lock(&lock);
    pthread_mutex_lock(&lock);      /* a default mutex locked twice by its owner never returns */
    return 0;
}

/* Crashes the first time (creating the marker), works once the marker exists. */
int faulty_flaky(const char *marker)
{
    FILE *f = fopen(marker, "r");
    if (f) {
        fclose(f);
        return 42;
    }
    f = fopen(marker, "w");
    if (f)
        fclose(f);
    return faulty_null(0);
}

int faulty_slow(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&t, NULL);
    return ms;
}

/* A string of mib MiB: more than one message can carry. */
char *faulty_big(int mib)
{
    size_t n = (size_t)mib << 20;
    char *s = malloc(n + 1);
    if (s) {
        memset(s, 'b', n);
        s[n] = '\0';
    }
    return s;
}

/* Calls back for ever: each call back is quick, the call as a whole never ends. */
int faulty_chatty(int (*cb)(int))
{
    int s = 0;
    for (;;)
        s += cb(1);
    return s;
}

int faulty_callback(int (*cb)(int), int x)
{
    return cb(x) + 1;
}
