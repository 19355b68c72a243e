/*
 * stats.c - per crossing edge (calling domain -> function): calls, bytes copied, time spent,
 * counted in the main process, which sees every crossing (it makes or serves each one, and relays
 * the calls between two domains), and written at exit as qpm.stats/1.
 *
 * Each thread counts into its own block (no shared cache line on the call path); blocks are
 * registered once and summed at exit.  Time is sampled: one call in QRT_STATS_SAMPLE is timed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qrt_internal.h"

#define QRT_STATS_SAMPLE 16u

struct counter {
    _Atomic uint64_t calls, bytes, timed_calls, timed_ns;
};

struct block {
    struct block *next;
    struct counter *counters;      /* [ndomains][nfunctions] */
};

static const struct qrt_program *program;
static struct block *blocks;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread struct block *mine;
static __thread unsigned tick;
static long long started_ms;

static struct counter *counter(int caller, uint32_t function)
{
    if (!mine) {
        struct block *b = calloc(1, sizeof *b);
        if (!b)
            return NULL;
        b->counters = calloc((size_t)program->ndomains * program->nfunctions, sizeof *b->counters);
        if (!b->counters) {
            free(b);
            return NULL;
        }
        pthread_mutex_lock(&blocks_lock);
        b->next = blocks;
        blocks = b;
        pthread_mutex_unlock(&blocks_lock);
        mine = b;
    }
    return &mine->counters[(size_t)caller * program->nfunctions + function];
}

int qrt__stats_timed(void)
{
    return program && ++tick % QRT_STATS_SAMPLE == 0;
}

long long qrt__stats_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void qrt__stats_count(int caller, uint32_t function, size_t bytes, long long ns)
{
    if (!program || caller < 0 || caller >= program->ndomains || function >= program->nfunctions)
        return;
    struct counter *c = counter(caller, function);
    if (!c)
        return;
    atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->bytes, bytes, memory_order_relaxed);
    if (ns >= 0) {
        atomic_fetch_add_explicit(&c->timed_calls, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->timed_ns, (uint64_t)ns, memory_order_relaxed);
    }
}

static void write_stats(void)
{
    if (!program)
        return;
    size_t n = (size_t)program->ndomains * program->nfunctions;
    uint64_t *calls = calloc(n ? n : 1, sizeof *calls), *bytes = calloc(n ? n : 1, sizeof *bytes);
    uint64_t *tcalls = calloc(n ? n : 1, sizeof *tcalls), *tns = calloc(n ? n : 1, sizeof *tns);
    if (!calls || !bytes || !tcalls || !tns)
        goto out;
    pthread_mutex_lock(&blocks_lock);
    for (struct block *b = blocks; b; b = b->next) {
        for (size_t i = 0; i < n; i++) {
            calls[i] += atomic_load(&b->counters[i].calls);
            bytes[i] += atomic_load(&b->counters[i].bytes);
            tcalls[i] += atomic_load(&b->counters[i].timed_calls);
            tns[i] += atomic_load(&b->counters[i].timed_ns);
        }
    }
    pthread_mutex_unlock(&blocks_lock);

    char dir[PATH_MAX], path[PATH_MAX + 96], tmp[PATH_MAX + 128], when[40], stamp[40], host[256] = "";
    qrt__report_dir(dir, sizeof dir);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    gethostname(host, sizeof host - 1);
    snprintf(path, sizeof path, "%s/stats-%s-%ld.json", dir, stamp, (long)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto out;
    /* Names come from the build and the machine: escaped like every other report string. */
    fputs("{\n  \"schema\": \"qpm.stats/1\",\n  \"program\": ", f);
    qrt__json_string(f, program->name);
    fputs(",\n  \"plan\": ", f);
    qrt__json_string(f, program->plan ? program->plan : "");
    fputs(",\n  \"host\": ", f);
    qrt__json_string(f, host);
    fprintf(f, ",\n  \"pid\": %ld,\n  \"time\": ", (long)getpid());
    qrt__json_string(f, when);
    fprintf(f, ",\n  \"duration_ms\": %lld,\n  \"edges\": [", qrt__now_ms() - started_ms);
    int first = 1;
    for (int d = 0; d < program->ndomains; d++) {
        for (uint32_t fn = 0; fn < program->nfunctions; fn++) {
            size_t i = (size_t)d * program->nfunctions + fn;
            if (!calls[i])
                continue;
            int callee = program->function_domain[fn];
            uint64_t ns = tcalls[i] ? (uint64_t)((double)tns[i] / (double)tcalls[i] * (double)calls[i]) : 0;
            fputs(first ? "\n    {\"caller_domain\": " : ",\n    {\"caller_domain\": ", f);
            qrt__json_string(f, program->domains[d]);
            fputs(", \"callee\": ", f);
            qrt__json_string(f, program->functions[fn]);
            fputs(", \"callee_domain\": ", f);
            qrt__json_string(f, callee >= 0 ? program->domains[callee] : "caller");
            fprintf(f, ", \"calls\": %llu, \"bytes\": %llu, \"time_ns\": %llu}",
                    (unsigned long long)calls[i], (unsigned long long)bytes[i], (unsigned long long)ns);
            first = 0;
        }
    }
    fputs(first ? "]\n}\n" : "\n  ]\n}\n", f);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed || rename(tmp, path) != 0)
        unlink(tmp);
out:
    free(calls);
    free(bytes);
    free(tcalls);
    free(tns);
}

void qrt__stats_start(const struct qrt_program *p)
{
    program = p;
    started_ms = qrt__now_ms();
    atexit(write_stats);
}
