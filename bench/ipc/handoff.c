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
 * wakes it only then (both sides sequentially consistent, so one of them always sees the other):
 * no spinning, no yielding, the rest left to the scheduler.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <linux/futex.h>
#include <pthread.h>
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

enum { QB_CALL = 1, QB_ANSWER = 2 };

struct qb_slot {
    _Alignas(64) _Atomic uint32_t turn;     /* QB_CALL or QB_ANSWER; the futex word */
    _Atomic uint32_t caller_sleeps, server_sleeps;
};

struct qb_area {
    _Alignas(64) _Atomic uint32_t nslots;   /* slots taken; the peer's futex word */
    struct qb_slot slot[QB_SLOTS];
};

static struct qb_area *area;
static __thread int mine = -1;

static void qb_futex(_Atomic uint32_t *word, int op, uint32_t value)
{
    syscall(SYS_futex, (uint32_t *)word, op, value, NULL, NULL, 0);
}

static void qb_wait(_Atomic uint32_t *word, uint32_t want, _Atomic uint32_t *sleeps)
{
    for (;;) {
        if (atomic_load(word) == want)
            return;
        atomic_store(sleeps, 1);
        uint32_t now = atomic_load(word);
        if (now != want)
            qb_futex(word, FUTEX_WAIT, now);
        atomic_store(sleeps, 0);
    }
}

static void qb_post(_Atomic uint32_t *word, uint32_t value, _Atomic uint32_t *peer_sleeps)
{
    atomic_store(word, value);
    if (atomic_load(peer_sleeps))
        qb_futex(word, FUTEX_WAKE, 1);
}

static void *qb_serve(void *arg)
{
    struct qb_slot *s = arg;
    for (;;) {
        qb_wait(&s->turn, QB_CALL, &s->server_sleeps);
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
    if (pid > 0)
        return;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    uint32_t started = 0;
    for (;;) {
        uint32_t n = atomic_load(&area->nslots);
        for (; started < n && started < QB_SLOTS; started++) {
            pthread_t t;
            if (pthread_create(&t, NULL, qb_serve, &area->slot[started]) != 0)
                _exit(1);
        }
        qb_futex(&area->nslots, FUTEX_WAIT, n);
    }
}

void qb_handoff(void)
{
    if (mine < 0) {
        mine = (int)atomic_fetch_add(&area->nslots, 1);
        if (mine >= QB_SLOTS) {
            fprintf(stderr, "handoff: more than %d calling threads\n", QB_SLOTS);
            abort();
        }
        qb_futex(&area->nslots, FUTEX_WAKE, 1);
    }
    struct qb_slot *s = &area->slot[mine];
    qb_post(&s->turn, QB_CALL, &s->server_sleeps);
    qb_wait(&s->turn, QB_ANSWER, &s->caller_sleeps);
}
