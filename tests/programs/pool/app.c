/* app SCENARIO [ARGS]: drives pool from many threads and prints what came back, one fact a line.
 *
 *   early                  dereferences NULL first thing in main()
 *   pool THREADS CALLS     THREADS live threads (64 KiB stacks) each make CALLS calls at once
 *   poolcrash THREADS CALLS
 *                          the same, and thread 0 crashes the component halfway through its calls
 *   rendezvous N           N threads whose calls must all be inside the component together
 *   innocent crash|flaky [MARKER]
 *                          8 slow calls in flight while another call crashes the component
 *   threadcrash            a thread the component starts crashes while 2 slow calls are in flight
 *   fds                    the component's descriptors, before and after a restart
 *   exitmain               main() calls pthread_exit while 4 threads go on calling
 *   maincrash              main() dereferences NULL after one crossing call
 *   follow N               main keeps to one CPU, then another, making N calls on each with
 *                          1 ms between them; prints on how many the component ran on main's CPU
 *   busy N US              main keeps to one CPU and makes N calls with US microseconds of work
 *                          (no sleep) between them; prints on how many the component ran there,
 *                          and on how many its thread was kept to one CPU
 */
#include "pool.h"

#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) int app_early_crash(int x)
{
    int *volatile p = NULL;
    return *p + x;      /* a real NULL dereference */
}

/* ---- pool: thousands of threads, all alive and calling at once ---- */

struct worker {
    pthread_t thread;
    int id, calls, crash_at;
    long correct;
    int culprit;
};

static pthread_barrier_t barrier;

static void *pool_worker(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&barrier);     /* every thread exists before any calls */
    for (int k = 0; k < w->calls; k++) {
        int x = w->id * w->calls + k;
        if (k == w->crash_at)
            w->culprit = pool_crash(x);
        if (pool_f(x) == x * 3 + 1)
            w->correct++;
    }
    return NULL;
}

static pthread_attr_t small_stacks(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    return attr;
}

static int pool(int threads, int calls, int crash)
{
    struct worker *w = calloc((size_t)threads, sizeof *w);
    pthread_attr_t attr = small_stacks();
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        w[i].id = i;
        w[i].calls = calls;
        w[i].crash_at = crash && i == 0 ? calls / 2 : -1;
        int rc = pthread_create(&w[i].thread, &attr, pool_worker, &w[i]);
        if (rc != 0) {
            printf("pthread_create %d failed: %s\n", i, strerror(rc));
            _exit(3);       /* the others wait at the barrier: nothing to join */
        }
    }
    printf("threads %d\n", threads);
    long correct = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        correct += w[i].correct;
    }
    printf("correct %ld of %ld\n", correct, (long)threads * calls);
    if (crash)
        printf("culprit %d\n", w[0].culprit);
    free(w);
    return 0;
}

/* ---- rendezvous: N calls inside the component at the same time ---- */

static void *rendezvous_caller(void *arg)
{
    return (void *)(long)pool_rendezvous((int)(long)arg);
}

static int rendezvous(int n)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_attr_t attr = small_stacks();
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&t[i], &attr, rendezvous_caller, (void *)(long)n);
        if (rc != 0) {
            printf("pthread_create %d failed: %s\n", i, strerror(rc));
            _exit(3);
        }
    }
    long met = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        met += (long)r;
    }
    printf("met %ld of %d\n", met, n);
    free(t);
    return 0;
}

/* ---- slow calls in flight while the component crashes ---- */

static void *slow_caller(void *arg)
{
    return (void *)(long)pool_slow((int)(long)arg);
}

static void start_slow(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, slow_caller, (void *)(long)(100 + i));
    /* They are in flight: each has entered pool_slow, where it waits for pool_release(). */
    printf("entered %d\n", pool_wait_entered(n));
}

static void join_slow(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        printf("slow %d %ld\n", 100 + i, (long)r);
    }
}

static int innocent(const char *how, const char *marker)
{
    int before = pool_pid();
    pthread_t t[8];
    start_slow(t, 8);
    printf("culprit %d\n", !strcmp(how, "crash") ? pool_crash(5) : pool_flaky(marker, 5));
    printf("release %d\n", pool_release());
    join_slow(t, 8);
    printf("restarted %d\n", pool_pid() != before);
    return 0;
}

static int threadcrash(void)
{
    int before = pool_pid();
    pthread_t t[2];
    start_slow(t, 2);
    printf("culprit %d\n", pool_thread_crash(5));
    printf("release %d\n", pool_release());
    join_slow(t, 2);
    printf("after %d\n", pool_f(5));
    printf("restarted %d\n", pool_pid() != before);
    return 0;
}

/* ---- descriptors ---- */

static void print_fds(const char *when)
{
    char *s = pool_fds();
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        printf("%s %s\n", when, line);
    free(s);
}

static int fds(void)
{
    int before = pool_pid();
    print_fds("first");
    /* Sockets, pipes and files, none of them close-on-exec. */
    int opened[20], n = 0;
    for (int i = 0; i < 5; i++) {
        if (pipe(&opened[n]) == 0)
            n += 2;
    }
    for (int i = 0; i < 4; i++)
        opened[n++] = open("/dev/null", O_RDONLY);
    for (int i = 0; i < 2; i++)
        opened[n++] = socket(AF_UNIX, SOCK_STREAM, 0);
    for (int i = 0; i < 2; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, &opened[n]) == 0)
            n += 2;
    }
    int inheritable = 0;
    for (int i = 0; i < n; i++)
        inheritable += opened[i] >= 0 && !(fcntl(opened[i], F_GETFD) & FD_CLOEXEC);
    printf("main opened %d inheritable %d\n", n, inheritable);
    printf("crash %d\n", pool_crash(1));
    print_fds("after");
    printf("restarted %d\n", pool_pid() != before);
    return 0;
}

/* ---- main() leaves early ---- */

#define EXIT_WORKERS 4
static pthread_t main_thread;
static pthread_barrier_t exit_barrier;
static int main_pid;

static void *exit_worker(void *arg)
{
    long id = (long)arg;
    if (id == 0)    /* wait until main() has really gone, then let everyone call */
        printf("main joined %d\n", pthread_join(main_thread, NULL));
    pthread_barrier_wait(&exit_barrier);
    int ok = 0;
    for (int k = 0; k < 200; k++) {
        int x = (int)id * 1000 + k;
        ok += pool_f(x) == x * 3 + 1;
    }
    printf("worker %ld ok %d same process %d\n", id, ok, pool_pid() == main_pid);
    return NULL;
}

static int exitmain(void)
{
    main_thread = pthread_self();
    main_pid = pool_pid();
    pthread_barrier_init(&exit_barrier, NULL, EXIT_WORKERS);
    for (long i = 0; i < EXIT_WORKERS; i++) {
        pthread_t t;
        pthread_create(&t, NULL, exit_worker, (void *)i);
        pthread_detach(t);
    }
    printf("main leaves\n");
    pthread_exit(NULL);
}

/* The two highest CPUs main may run on, into cpus: 0, or 3 (said why) when it has fewer. */
static int two_cpus(const char *scenario, int cpus[2])
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) {
        printf("%s needs 2 CPUs\n", scenario);
        return 3;
    }
    int found = 0;
    for (int c = CPU_SETSIZE - 1; c >= 0 && found < 2; c--)
        if (CPU_ISSET(c, &allowed))
            cpus[found++] = c;
    return 0;
}

/* Keeps main to one CPU: 0, or 3. */
static int keep_main_to(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one) == 0 ? 0 : 3;
}

/* Calls with a pause between them (the serving thread sleeps in each), from main kept to one
 * CPU and then to another: the component's thread should run where main runs. */
static int follow(int n)
{
    int cpus[2];
    if (two_cpus("follow", cpus) != 0)
        return 3;
    for (int k = 0; k < 2; k++) {
        if (keep_main_to(cpus[k]) != 0)
            return 3;
        int same = 0;
        for (int i = 0; i < n; i++) {
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            same += pool_cpu() == cpus[k];
        }
        printf("cpu %d: %d of %d on main's cpu\n", k, same, n);
    }
    return 0;
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Calls back to back (us = 0) or with some work between them, from main kept to one CPU, once
 * the serving thread keeps to main's CPU: calls 1 ms apart (it sleeps before each, and keeps to
 * the CPU of the caller that woke it) until one runs there, kept to it (on a loaded machine its
 * first sleep may come late).  A serving thread that merely runs there is not enough: started
 * on main's CPU, it may answer each call after yielding to main, never sleeping, and so never
 * learn where main runs. */
static int busy(int n, int us)
{
    int cpus[2];
    if (two_cpus("busy", cpus) != 0 || keep_main_to(cpus[0]) != 0)
        return 3;
    int cpu = cpus[0];
    struct timespec pause = {0, 1000000};
    int tries = 0;
    do {
        nanosleep(&pause, NULL);
    } while (!(pool_cpu() == cpu && pool_kept()) && ++tries < 1000);
    if (tries == 1000) {
        printf("busy: the serving thread never kept to main's cpu in 1000 calls 1 ms apart\n");
        return 3;
    }
    int same = 0, kept = 0;
    for (int i = 0; i < n; i++) {
        long long until = now_ns() + us * 1000LL;
        while (us && now_ns() < until)
            ;
        same += pool_cpu() == cpu;
        kept += pool_kept();
    }
    printf("%d of %d on main's cpu, %d kept to one\n", same, n, kept);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "early"))
        return app_early_crash(argc);
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *s = argv[1];
    if (!strcmp(s, "pool") && argc == 4)
        return pool(atoi(argv[2]), atoi(argv[3]), 0);
    if (!strcmp(s, "poolcrash") && argc == 4)
        return pool(atoi(argv[2]), atoi(argv[3]), 1);
    if (!strcmp(s, "rendezvous") && argc == 3)
        return rendezvous(atoi(argv[2]));
    if (!strcmp(s, "innocent") && argc >= 3)
        return innocent(argv[2], argc > 3 ? argv[3] : "");
    if (!strcmp(s, "threadcrash"))
        return threadcrash();
    if (!strcmp(s, "fds"))
        return fds();
    if (!strcmp(s, "follow") && argc == 3)
        return follow(atoi(argv[2]));
    if (!strcmp(s, "busy") && argc == 4)
        return busy(atoi(argv[2]), atoi(argv[3]));
    if (!strcmp(s, "exitmain"))
        return exitmain();
    if (!strcmp(s, "maincrash")) {
        printf("call %d\n", pool_f(2));
        int *volatile p = NULL;
        return *p;      /* the main process itself dies */
    }
    return 2;
}
