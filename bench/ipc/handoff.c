/*
 * handoff.c - the bare hand-off between two processes, for linking into a program: qb_handoff()
 * makes one futex round trip with a thread of a second process that does nothing but answer.
 *
 * bench/kvstore.py links it into the plain kvstore with a wrapper around each function that
 * isolate-cache's plan sends across, so that every such call first makes the round trip and then
 * runs in place: the crossings' hand-offs alone, in the server, under the same load, with no
 * copying, no protocol and no supervision.  What a split build cannot do better than.
 *
 * The peer process is forked before main() (a constructor) and dies with the program
 * (PR_SET_PDEATHSIG).  Each calling thread gets a slot of its own on its first call, and the peer
 * a thread for that slot.  A side sleeps in FUTEX_WAIT only after saying so, and the other side
 * wakes it only then (both sides sequentially consistent, so one of them always sees the other).
 *
 * The hand-off is the cheapest this machine has, the one on one core: the caller names its CPU in
 * the slot, the peer's thread keeps to that CPU (sched_setaffinity when it changes), and the
 * caller yields after posting (up to QB_YIELDS times, then sleeps), so that the woken thread runs
 * on the caller's core at once and its answer needs no wake-up.  Two other forms were measured in
 * kvstore and carry less (docs/PERFORMANCE.md, "The hand-off measured in place"): both sides
 * sleeping, left to the scheduler, and spinning before sleeping, which on cores that are all busy
 * only keeps the thread waited for from running.
 *
 * Built with -DQB_REMOTE, each slot also carries QB_DATA bytes and a function number, and
 * qb_remote(fn) makes the same round trip with the peer's thread calling qb_peer_call(fn, data)
 * (which the program provides) before it answers: calls made in the peer process, over the same
 * hand-off, with whatever the caller and qb_peer_call copy through qb_data().  bench/ipc/
 * remote_cache.c uses it to run kvstore's cache in the peer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define QB_SLOTS 4096
#define QB_YIELDS 32
#define QB_DATA 8192

enum { QB_CALL = 1, QB_ANSWER = 2 };

struct qb_slot {
    _Alignas(64) _Atomic uint32_t turn;     /* QB_CALL or QB_ANSWER; the futex word */
    _Atomic uint32_t caller_sleeps, server_sleeps;
    _Atomic int32_t caller_cpu;             /* where the caller runs */
#ifdef QB_REMOTE
    uint32_t fn;                            /* 0: a bare hand-off; else qb_peer_call's */
    _Alignas(64) unsigned char data[QB_DATA];
#endif
};

#ifdef QB_REMOTE
void qb_peer_call(uint32_t fn, unsigned char *data);
#endif

struct qb_area {
    _Alignas(64) _Atomic uint32_t nslots;   /* slots taken; the peer's futex word */
    struct qb_slot slot[QB_SLOTS];
};

static struct qb_area *area;
static pid_t peer;                          /* in the program: the peer's pid */
static __thread int mine = -1;

static long qb_futex(_Atomic uint32_t *word, int op, uint32_t value, const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, value, timeout, NULL, 0);
}

/* Waits until *word is want.  A caller whose peer has gone (it looks once a second) stops the
 * program rather than wait for ever. */
static void qb_wait(_Atomic uint32_t *word, uint32_t want, _Atomic uint32_t *sleeps)
{
    const struct timespec second = {1, 0};
    for (;;) {
        if (atomic_load(word) == want)
            return;
        atomic_store(sleeps, 1);
        uint32_t now = atomic_load(word);
        if (now != want && qb_futex(word, FUTEX_WAIT, now, &second) < 0 && errno == ETIMEDOUT
            && peer > 0 && kill(peer, 0) < 0) {
            fprintf(stderr, "handoff: the peer process is gone\n");
            abort();
        }
        atomic_store(sleeps, 0);
    }
}

static void qb_post(_Atomic uint32_t *word, uint32_t value, _Atomic uint32_t *peer_sleeps)
{
    atomic_store(word, value);
    if (atomic_load(peer_sleeps))
        qb_futex(word, FUTEX_WAKE, 1, NULL);
}

static void *qb_serve(void *arg)
{
    struct qb_slot *s = arg;
    int kept = -1;
    for (;;) {
        qb_wait(&s->turn, QB_CALL, &s->server_sleeps);
        int cpu = atomic_load_explicit(&s->caller_cpu, memory_order_relaxed);
        if (cpu >= 0 && cpu < CPU_SETSIZE && cpu != kept) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) == 0)
                kept = cpu;
        }
#ifdef QB_REMOTE
        if (s->fn)
            qb_peer_call(s->fn, s->data);
#endif
        qb_post(&s->turn, QB_ANSWER, &s->caller_sleeps);
    }
    return NULL;
}

__attribute__((constructor)) static void qb_start_peer(void)
{
    area = mmap(NULL, sizeof *area, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        perror("handoff: mmap");
        abort();
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("handoff: fork");
        abort();
    }
    if (pid > 0) {
        peer = pid;
        return;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    int null = open("/dev/null", O_RDWR);   /* the program's pipes close when the program ends */
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    uint32_t started = 0;
    for (;;) {
        uint32_t n = atomic_load(&area->nslots);
        for (; started < n && started < QB_SLOTS; started++) {
            pthread_t t;
            if (pthread_create(&t, NULL, qb_serve, &area->slot[started]) != 0)
                _exit(1);
        }
        qb_futex(&area->nslots, FUTEX_WAIT, n, NULL);
    }
}

/* The calling thread's slot, taken on its first call. */
static struct qb_slot *qb_mine(void)
{
    if (mine < 0) {
        mine = (int)atomic_fetch_add(&area->nslots, 1);
        if (mine >= QB_SLOTS) {
            fprintf(stderr, "handoff: more than %d calling threads\n", QB_SLOTS);
            abort();
        }
        qb_futex(&area->nslots, FUTEX_WAKE, 1, NULL);
    }
    return &area->slot[mine];
}

static void qb_round_trip(struct qb_slot *s)
{
    atomic_store_explicit(&s->caller_cpu, sched_getcpu(), memory_order_relaxed);
    qb_post(&s->turn, QB_CALL, &s->server_sleeps);
    for (int i = 0; i < QB_YIELDS && atomic_load(&s->turn) != QB_ANSWER; i++)
        sched_yield();
    qb_wait(&s->turn, QB_ANSWER, &s->caller_sleeps);
}

void qb_handoff(void)
{
    struct qb_slot *s = qb_mine();
#ifdef QB_REMOTE
    s->fn = 0;
#endif
    qb_round_trip(s);
}

#ifdef QB_REMOTE
/* The calling thread's QB_DATA bytes, which its qb_remote() calls carry both ways. */
unsigned char *qb_data(void)
{
    return qb_mine()->data;
}

/* One round trip in which the peer calls qb_peer_call(fn, qb_data()); fn is not 0. */
void qb_remote(uint32_t fn)
{
    struct qb_slot *s = qb_mine();
    s->fn = fn;
    qb_round_trip(s);
}
#endif
