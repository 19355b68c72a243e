/*
 * stats.c - per crossing edge (calling domain -> function): calls (faulted ones too), bytes
 * copied, time spent, counted in the main process, which sees every crossing (it makes or serves
 * each one, and relays the calls between two domains), and written as qpm.stats/1.
 *
 * Each thread counts into its own block (no shared cache line on the call path); blocks are
 * registered once per thread, handed on to a later thread when theirs ends (so a server that
 * starts a thread per connection does not grow a block per connection), and summed when written.
 *
 * Time is sampled: one call in QRT_STATS_SAMPLE is timed.  Each thread's tick starts at its own
 * offset, assigned at registration: a pseudo-random start, then a stride that is coprime with the
 * sample period, so any QRT_STATS_SAMPLE consecutive threads start at every offset once.  Threads
 * that make one or two calls each are thus timed one call in QRT_STATS_SAMPLE in aggregate, and
 * no fewer: 64 threads of one call each time 4 calls, not "4 on average, none now and then".
 *
 * The file: one per run, $QPM_REPORT_DIR/stats-<start stamp>-<pid>.json, rewritten by a writer
 * thread ("qrt-stats", every signal blocked) every QPM_STATS_INTERVAL_S seconds (default 10) and
 * once more at exit ("final": true), so that a process killed by any signal leaves the figures
 * of its last interval.  The figures are per crossing edge: a run that has made no crossing call
 * yet (`prog --help`, a server stopped before its first request) has none, and writes no file
 * (nor creates the directory) until it makes one.  Each write goes to a unique temporary file
 * (an unnamed O_TMPFILE where the file system has it, else <file>.<pid>.<n>.tmp) renamed over the
 * file: a reader never sees half of one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qrt_internal.h"

#define QRT_STATS_STRIDE 7u                 /* coprime with QRT_STATS_SAMPLE */
#define QRT_STATS_INTERVAL_MS 10000LL       /* QPM_STATS_INTERVAL_S unset or invalid */
#define QRT_STATS_INTERVAL_MIN_MS 10LL
#define QRT_STATS_INTERVAL_MAX_MS (1000LL * 86400 * 365)

struct block {
    struct block *next;
    int owned;                     /* a live thread counts into it (under blocks_lock) */
    struct qrt__counter *counters;  /* [ndomains][nfunctions] */
};

static const struct qrt_program *program;
static struct block *blocks;
static unsigned registered;        /* threads registered so far (under blocks_lock) */
static unsigned offset_base;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t thread_end;
static int have_thread_end;
static __thread struct block *mine;
/* Starts one short of a sample, so that a thread's first call registers it (qrt__stats_timed). */
__thread unsigned qrt__stats_tick = QRT_STATS_SAMPLE - 1;
static __thread int seeded;

/* The run: fixed at start, the same for every write. */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static int finished;               /* the final write is done (under write_lock) */
static unsigned writes;            /* temporary names (under write_lock) */
static pid_t run_pid;
static long long started_ns;       /* CLOCK_MONOTONIC */
static long long interval_ms;
static char started_iso[40];
static char run_path[PATH_MAX + 96];

static uint32_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* A thread ends: its block goes to the next thread that registers (its counts stay in it). */
static void release_block(void *b)
{
    pthread_mutex_lock(&blocks_lock);
    ((struct block *)b)->owned = 0;
    pthread_mutex_unlock(&blocks_lock);
    mine = NULL;
}

/* Once per thread: its sampling offset and its block (a free one, or a new one). */
static void register_thread(void)
{
    pthread_mutex_lock(&blocks_lock);
    unsigned seq = registered++;
    struct block *b = blocks;
    while (b && b->owned)
        b = b->next;
    if (b)
        b->owned = 1;
    pthread_mutex_unlock(&blocks_lock);
    qrt__stats_tick = (offset_base + seq * QRT_STATS_STRIDE) % QRT_STATS_SAMPLE;
    seeded = 1;
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return;
        b->counters = calloc((size_t)program->ndomains * program->nfunctions, sizeof *b->counters);
        if (!b->counters) {
            free(b);
            return;
        }
        b->owned = 1;
        pthread_mutex_lock(&blocks_lock);
        b->next = blocks;
        blocks = b;
        pthread_mutex_unlock(&blocks_lock);
    }
    mine = b;
    if (have_thread_end)
        pthread_setspecific(thread_end, b);
}

struct qrt__counter *qrt__stats_counter(int caller, uint32_t function)
{
    if (!program || caller < 0 || caller >= program->ndomains || function >= program->nfunctions)
        return NULL;
    if (!mine)
        register_thread();
    if (!mine)
        return NULL;
    return &mine->counters[(size_t)caller * program->nfunctions + function];
}

int qrt__stats_timed_slow(void)
{
    if (!program)
        return 0;
    if (seeded)
        return 1;
    register_thread();
    return ++qrt__stats_tick % QRT_STATS_SAMPLE == 0;
}

long long qrt__stats_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void qrt__stats_count(int caller, uint32_t function, size_t bytes, long long ns)
{
    struct qrt__counter *c = qrt__stats_counter(caller, function);
    if (!c)
        return;
    qrt__stats_add(&c->calls, 1);
    qrt__stats_add(&c->bytes, bytes);
    if (ns >= 0) {
        qrt__stats_add(&c->timed_calls, 1);
        qrt__stats_add(&c->timed_ns, (uint64_t)ns);
    }
}

void qrt__stats_faulted(int caller, uint32_t function)
{
    struct qrt__counter *c = qrt__stats_counter(caller, function);
    if (!c)
        return;
    qrt__stats_add(&c->calls, 1);
    qrt__stats_add(&c->faulted, 1);
}

static void iso_time(char *out, size_t cap, const char *format, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, format, &tm);
}

/* The document, into f; returns its number of edges (0: nothing to write), or -1 when out of
 * memory.  Numbers are printed as integers: the program's locale may have changed the decimal
 * point. */
static int render(FILE *f, int final)
{
    size_t n = (size_t)program->ndomains * program->nfunctions;
    uint64_t (*v)[5] = calloc(n ? n : 1, sizeof *v);     /* calls, faulted, bytes, timed calls, ns */
    if (!v)
        return -1;
    pthread_mutex_lock(&blocks_lock);
    for (struct block *b = blocks; b; b = b->next) {
        for (size_t i = 0; i < n; i++) {
            v[i][0] += atomic_load_explicit(&b->counters[i].calls, memory_order_relaxed);
            v[i][1] += atomic_load_explicit(&b->counters[i].faulted, memory_order_relaxed);
            v[i][2] += atomic_load_explicit(&b->counters[i].bytes, memory_order_relaxed);
            v[i][3] += atomic_load_explicit(&b->counters[i].timed_calls, memory_order_relaxed);
            v[i][4] += atomic_load_explicit(&b->counters[i].timed_ns, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&blocks_lock);
    int edges = 0;
    for (size_t i = 0; i < n; i++)
        edges += v[i][0] != 0;
    if (!edges) {
        free(v);
        return 0;
    }
    long long duration_ms = (qrt__stats_clock() - started_ns) / 1000000LL;

    char when[40], host[256] = "";
    iso_time(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", time(NULL));
    gethostname(host, sizeof host - 1);
    /* Names come from the build and the machine: escaped like every other report string. */
    fputs("{\n  \"schema\": \"qpm.stats/1\",\n  \"program\": ", f);
    qrt__json_string(f, program->name);
    fputs(",\n  \"plan\": ", f);
    qrt__json_string(f, program->plan ? program->plan : "");
    fputs(",\n  \"host\": ", f);
    qrt__json_string(f, host);
    fprintf(f, ",\n  \"pid\": %ld,\n  \"started\": ", (long)run_pid);
    qrt__json_string(f, started_iso);
    fputs(",\n  \"time\": ", f);
    qrt__json_string(f, when);
    fprintf(f, ",\n  \"duration_ms\": %lld,\n  \"interval_s\": %lld.%03lld,\n  \"final\": %s,\n  \"edges\": [",
            duration_ms, interval_ms / 1000, interval_ms % 1000, final ? "true" : "false");
    int first = 1;
    for (int d = 0; d < program->ndomains; d++) {
        for (uint32_t fn = 0; fn < program->nfunctions; fn++) {
            size_t i = (size_t)d * program->nfunctions + fn;
            uint64_t calls = v[i][0], tcalls = v[i][3];
            if (!calls)
                continue;
            int callee = program->function_domain[fn];
            /* The timed calls' mean, for every call: faulted ones included, they cost time too. */
            uint64_t ns = tcalls ? (uint64_t)((double)v[i][4] / (double)tcalls * (double)calls) : 0;
            fputs(first ? "\n    {\"caller_domain\": " : ",\n    {\"caller_domain\": ", f);
            qrt__json_string(f, program->domains[d]);
            fputs(", \"callee\": ", f);
            qrt__json_string(f, program->functions[fn]);
            fputs(", \"callee_domain\": ", f);
            qrt__json_string(f, callee >= 0 ? program->domains[callee] : "caller");
            fprintf(f, ", \"calls\": %llu, \"faulted\": %llu, \"bytes\": %llu, \"time_ns\": %llu, "
                       "\"timed_calls\": %llu}",
                    (unsigned long long)calls, (unsigned long long)v[i][1], (unsigned long long)v[i][2],
                    (unsigned long long)ns, (unsigned long long)tcalls);
            first = 0;
        }
    }
    fputs(first ? "]\n}\n" : "\n  ]\n}\n", f);
    free(v);
    return edges;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the stats file: never two writes at once, nothing after the final one, nothing from a
 * child forked without exec (its counts are the parent's). */
static void write_stats(int final)
{
    if (!program || getpid() != run_pid)
        return;
    pthread_mutex_lock(&write_lock);
    if (finished)
        goto unlock;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        goto unlock;
    /* No crossing call yet: nothing to write.  Counts only grow, so once a file is written every
     * later write has edges too and rewrites it. */
    int edges = render(m, final);
    int bad = ferror(m);
    if (fclose(m) != 0 || bad || edges <= 0 || !text || !len) {
        free(text);
        goto unlock;
    }
    char dir[PATH_MAX], tmp[PATH_MAX + 160], proc[64];
    qrt__report_dir(dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", run_path, (long)run_pid, writes++);
    /* An unnamed file, named only once complete: a kill mid-write leaves nothing behind. */
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (write_all(fd, text, len) != 0 || linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd >= 0 && write_all(fd, text, len) != 0) {
            close(fd);
            fd = -1;
            unlink(tmp);
        }
    }
    free(text);
    if (fd >= 0) {
        if (close(fd) != 0 || rename(tmp, run_path) != 0)
            unlink(tmp);
    }
unlock:
    if (final)
        finished = 1;   /* written or not, nothing comes after the write at exit */
    pthread_mutex_unlock(&write_lock);
}

static void write_final(void)
{
    write_stats(1);
}

static void *writer(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* already so from birth; the program's signals
                                                   are never delivered here */
    pthread_setname_np(pthread_self(), "qrt-stats");
    long long next_ns = started_ns;
    for (;;) {
        next_ns += interval_ms * 1000000LL;
        long long now = qrt__stats_clock();
        if (next_ns < now)      /* stopped for a while (SIGSTOP, a suspend): no catching up */
            next_ns = now + interval_ms * 1000000LL;
        struct timespec at = {(time_t)(next_ns / 1000000000LL), (long)(next_ns % 1000000000LL)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
            ;
        write_stats(0);
        pthread_mutex_lock(&write_lock);
        int done = finished;
        pthread_mutex_unlock(&write_lock);
        if (done)
            return NULL;
    }
}

/* QPM_STATS_INTERVAL_S in milliseconds: a positive number of seconds, fractions allowed (read
 * with a '.' whatever the locale); anything else is the default.  Clamped to [10 ms, a year]. */
static long long parse_interval(const char *s)
{
    if (!s)
        return QRT_STATS_INTERVAL_MS;
    while (*s == ' ' || *s == '\t')
        s++;
    long long whole = 0, frac = 0, scale = 1000;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++)
        if (whole < QRT_STATS_INTERVAL_MAX_MS)
            whole = whole * 10 + (*s - '0');
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (scale > 1) {
                scale /= 10;
                frac += (*s - '0') * scale;
            }
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (!digits || *s)
        return QRT_STATS_INTERVAL_MS;
    long long ms = whole >= QRT_STATS_INTERVAL_MAX_MS / 1000 ? QRT_STATS_INTERVAL_MAX_MS : whole * 1000 + frac;
    if (ms <= 0)
        return QRT_STATS_INTERVAL_MS;
    return ms < QRT_STATS_INTERVAL_MIN_MS ? QRT_STATS_INTERVAL_MIN_MS : ms;
}

void qrt__stats_start(const struct qrt_program *p)
{
    run_pid = getpid();
    started_ns = qrt__stats_clock();
    interval_ms = parse_interval(getenv("QPM_STATS_INTERVAL_S"));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char stamp[40], dir[PATH_MAX];
    iso_time(started_iso, sizeof started_iso, "%Y-%m-%dT%H:%M:%SZ", now.tv_sec);
    iso_time(stamp, sizeof stamp, "%Y%m%dT%H%M%S", now.tv_sec);
    qrt__report_dir_name(dir, sizeof dir);
    snprintf(run_path, sizeof run_path, "%s/stats-%s-%ld.json", dir, stamp, (long)run_pid);
    offset_base = mix((uint64_t)now.tv_nsec ^ ((uint64_t)run_pid << 32) ^ (uint64_t)(uintptr_t)&qrt__stats_tick);
    have_thread_end = pthread_key_create(&thread_end, release_block) == 0;
    program = p;
    atexit(write_final);

    /* Born with every signal blocked: no window in which a signal could land on it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, writer, NULL) != 0)
        fprintf(stderr, "%s: quarantine: no periodic stats (writer thread): written at exit only\n", p->name);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
