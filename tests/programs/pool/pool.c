#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Every wait in here is bounded: a test that goes wrong fails, it does not hang. */
#define WAIT_S 30

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int entered, released, arrived;

static struct timespec deadline(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += WAIT_S;
    return t;
}

int pool_cpu(void)
{
    return sched_getcpu();
}

int pool_kept(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1;
}

int pool_f(int x)
{
    return x * 3 + 1;
}

int pool_slow(int x)
{
    struct timespec end = deadline();
    pthread_mutex_lock(&lock);
    entered++;
    pthread_cond_broadcast(&cond);
    while (!released && pthread_cond_timedwait(&cond, &lock, &end) != ETIMEDOUT)
        ;
    int ok = released;
    pthread_mutex_unlock(&lock);
    return ok ? x * 3 + 1 : -1000;
}

int pool_wait_entered(int n)
{
    struct timespec end = deadline();
    pthread_mutex_lock(&lock);
    while (entered < n && pthread_cond_timedwait(&cond, &lock, &end) != ETIMEDOUT)
        ;
    int got = entered;
    pthread_mutex_unlock(&lock);
    return got;
}

int pool_release(void)
{
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return 1;
}

int pool_rendezvous(int n)
{
    struct timespec end = deadline();
    pthread_mutex_lock(&lock);
    arrived++;
    pthread_cond_broadcast(&cond);
    while (arrived < n && pthread_cond_timedwait(&cond, &lock, &end) != ETIMEDOUT)
        ;
    int met = arrived >= n;
    pthread_mutex_unlock(&lock);
    return met;
}

int pool_crash(int x)
{
    int *volatile p = NULL;
    return *p + x;      /* a real NULL dereference */
}

int pool_flaky(const char *marker, int x)
{
    FILE *f = fopen(marker, "r");
    if (f) {
        fclose(f);
        return x * 3 + 1;
    }
    f = fopen(marker, "w");
    if (f)
        fclose(f);
    return pool_crash(x);
}

static void *crasher(void *arg)
{
    int *volatile p = NULL;
    *p = (int)(long)arg;    /* on a thread that serves no call */
    return NULL;
}

int pool_thread_crash(int x)
{
    pthread_t t;
    if (pthread_create(&t, NULL, crasher, (void *)(long)x) != 0)
        return -1001;
    pthread_join(t, NULL);
    return x * 3 + 1;
}

int pool_pid(void)
{
    return (int)getpid();
}

char *pool_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return strdup("error=opendir\n");
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    if (!out) {
        closedir(d);
        return NULL;
    }
    out[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d))
            continue;
        char path[64], target[PATH_MAX];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        char line[PATH_MAX + 32];
        int k = snprintf(line, sizeof line, "%d=%s\n", fd, target);
        if (len + (size_t)k + 1 > cap) {
            char *bigger = realloc(out, cap = 2 * (len + (size_t)k + 1));
            if (!bigger)
                break;
            out = bigger;
        }
        memcpy(out + len, line, (size_t)k + 1);
        len += (size_t)k;
    }
    closedir(d);
    return out;
}
