/* app SCENARIO [ARG]: drives faulty and prints what came back, one result per line. */
#include "faulty.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *slow_caller(void *arg)
{
    (void)arg;
    return (void *)(long)(faulty_slow(200) == 200);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *s = argv[1];
    int before = faulty_pid();
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(s, "null"))
        printf("result %d\n", faulty_null(1));
    else if (!strcmp(s, "abort"))
        printf("result %d\n", faulty_abort());
    else if (!strcmp(s, "overflow"))
        printf("result %d\n", faulty_overflow(0));
    else if (!strcmp(s, "deadlock"))
        printf("result %d\n", faulty_deadlock());
    else if (!strcmp(s, "flaky"))
        printf("result %d\n", faulty_flaky(argv[2]));
    else if (!strcmp(s, "repeat")) {
        for (int i = 0; i < atoi(argv[2]); i++)
            printf("result %d\n", faulty_null(1));
    } else if (!strcmp(s, "threads")) {
        /* Calls in flight on other threads when the domain dies get the same treatment. */
        pthread_t t[6];
        for (int i = 0; i < 6; i++)
            pthread_create(&t[i], NULL, slow_caller, NULL);
        usleep(50000);
        printf("result %d\n", faulty_flaky(argv[2]));
        long ok = 0;
        for (int i = 0; i < 6; i++) {
            void *r;
            pthread_join(t[i], &r);
            ok += (long)r;
        }
        printf("slow calls ok %ld\n", ok);
    } else {
        return 2;
    }
    printf("after %d\n", faulty_ok(1));
    printf("inits %d\n", faulty_inits());
    printf("restarted %d\n", faulty_pid() != before);
    return 0;
}
