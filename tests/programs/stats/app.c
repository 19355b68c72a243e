/* app SCENARIO [ARG]: crossing calls for the runtime's statistics to count.
 *
 *   loop        calls work_add until killed (gives up by itself after 60 s)
 *   for MS      calls work_add for MS milliseconds, prints the number of calls, exits
 *   threads N   starts N threads that each make exactly one slow call (1 ms), joins them
 */
#include "work.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void *one_call(void *arg)
{
    (void)arg;
    return (void *)(long)(work_sleep(1) == 1);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *s = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(s, "loop")) {
        printf("looping\n");
        long long end = now_ms() + 60000;
        for (int i = 0; now_ms() < end; i++)
            if (work_add(i, 1) != i + 1)
                return 1;
        return 3;
    }
    if (!strcmp(s, "for") && argc > 2) {
        long long end = now_ms() + atoll(argv[2]);
        long calls = 0;
        while (now_ms() < end)
            if (work_add((int)calls, 1) == (int)calls + 1)
                calls++;
        printf("calls %ld\n", calls);
        return 0;
    }
    if (!strcmp(s, "threads") && argc > 2) {
        int n = atoi(argv[2]);
        pthread_t *t = calloc((size_t)n, sizeof *t);
        if (!t)
            return 1;
        for (int i = 0; i < n; i++)
            if (pthread_create(&t[i], NULL, one_call, NULL) != 0)
                return 1;
        long ok = 0;
        for (int i = 0; i < n; i++) {
            void *r;
            pthread_join(t[i], &r);
            ok += (long)r;
        }
        printf("ok %ld\n", ok);
        return 0;
    }
    return 2;
}
