/*
 * transport.c - channels in shared memory, the spin-then-sleep hand-off, and the conversation
 * loop that serves nested calls.
 *
 * A channel carries one message at a time.  Its state word says whose turn it is: the caller
 * side's (TO_CALLER) or the server side's (TO_SERVER).  The writer fills the header and buffer,
 * then publishes the turn with a sequentially consistent store and wakes the peer only when the
 * peer said it was going to sleep; the reader spins for a while (the peer usually answers within
 * microseconds) and then sleeps on the state word with futex.  Every message is copied into
 * private memory before it is decoded, so the peer cannot change it under our checks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "qrt_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

static const struct qrt_program *program;
static int self_domain = -1;
static struct qrt__domain domains[QRT_MAX_DOMAINS];

/* In the main process: per target domain, the channel this thread used last (kept while idle,
 * so that its next call usually finds it at hand) and how deep its calls into that domain are
 * nested now (a nested call reuses the channel of the outermost one).  In a domain: the channel
 * this serving thread serves. */
/* A main-process thread's link to each domain, in one place (the fast path reads all of it). */
struct tls_link {
    struct qrt__chan *chan;     /* the channel it used last (kept while idle), or NULL */
    struct qrt__slot *s;        /* its slot ... */
    uint32_t slot;              /* ... and index */
    uint32_t depth;             /* calls into the domain this thread is in now (nested ones too) */
    uint32_t generation;        /* of the outermost of those */
};
static __thread struct tls_link tls_to[QRT_MAX_DOMAINS];
static __thread struct qrt__chan *tls_serving;
static __thread struct qrt__chan *tls_current;     /* the channel whose call this thread serves */
__thread uint32_t qrt__serving_fn = UINT32_MAX;     /* the function it serves, for crash reports */
__thread uint32_t qrt__serving_channel = QRT_NO_CHANNEL;
__thread uint32_t qrt__serving_seq;                 /* main's number for the call served */
pid_t qrt__main_pid;
static __thread unsigned tls_nesting;      /* nested calls this thread is serving now */
static __thread unsigned tls_spin = QRT_SPIN_START;
static __thread unsigned tls_probe;
static __thread unsigned tls_yields = UINT_MAX;    /* yield rounds before sleeping; UINT_MAX: all */
static __thread int tls_woke;      /* this thread's last post woke its peer from sleep */
static __thread unsigned tls_wake_probe;
static __thread long long tls_answer_ns = QRT_WAKE_PROBE_NS;  /* its last sleep for an answer */
static __thread uint16_t tls_woke_cpu;  /* the CPU (+ 1) its last post woke its peer from */
static __thread long long tls_quick_from;   /* when its last answer came while it yielded to a
                                             * serving thread on its own CPU (0: never) */
static __thread int tls_slept;          /* its last wait ended in a sleep */
static pthread_key_t release_key;
static pthread_once_t release_once = PTHREAD_ONCE_INIT;

/* The program's tables the call path reads, copied out of it once: a call looks a function's
 * domain up with one load, not three in a chain. */
static const int *function_domain;
static uint32_t nfunctions;
static int call_timeout_ms[QRT_MAX_DOMAINS];

void qrt__set_program(const struct qrt_program *p, int self)
{
    program = p;
    self_domain = self;
    function_domain = p ? p->function_domain : NULL;
    nfunctions = p && p->function_domain ? p->nfunctions : 0;
    for (int d = 0; d < QRT_MAX_DOMAINS; d++)
        call_timeout_ms[d] = p && p->policies && d > 0 && d < p->ndomains ? p->policies[d].call_timeout_ms : 0;
}

struct qrt__domain *qrt__domain(int d)
{
    return &domains[d];
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

void qrt__wake_all(_Atomic uint32_t *word)
{
    futex(word, FUTEX_WAKE, INT_MAX, NULL);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Publishes a message for the other side: 0, or -EPIPE when the channel is dead (its peer is
 * gone, and a dead channel stays dead until the domain is restarted). */
#ifdef QRT_HOSTILE
/* Test builds only (tests/programs/hostile/hostile_transport.c): a domain that lies.  It may change
 * the message about to be posted, or answer by itself (1: post nothing more). */
static int hostile_post(struct qrt__chan *c, uint32_t *kind, uint32_t *fn, uint32_t *len, uint32_t *nfds);
#endif

/*
 * The hand-off's own clock, for its judgements of time (how soon a call follows its answer, how
 * long a sleep took, how long a probe spins): nanoseconds, on the x86 TSC where it is invariant and
 * the kernel's own clock source (so that it is the same on every CPU), else qrt__stats_clock.
 * clock_gettime reads the TSC too, through the vDSO's data page, at two to three times the cost
 * (and more when that page is not in the cache): main read it 2.7 times a kvstore request.  The
 * TSC's rate is measured against clock_gettime from the first use on, and used once at least
 * QRT_TSC_CALIBRATE_NS have passed; until then this is clock_gettime itself.
 */
#if defined(__x86_64__) || defined(__i386__)
#define QRT_TSC_CALIBRATE_NS 2000000LL
enum { TSC_UNKNOWN, TSC_MEASURING, TSC_READY, TSC_UNUSABLE };
static _Atomic int tsc_state;
static uint64_t tsc_origin;
static long long tsc_origin_ns;
static double tsc_ns_per_tick;
static pthread_mutex_t tsc_lock = PTHREAD_MUTEX_INITIALIZER;

static int tsc_invariant(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
        return 0;
    char source[32] = "";
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, source, sizeof source - 1);
    close(fd);
    return n >= 3 && strncmp(source, "tsc", 3) == 0 && (n == 3 || source[3] == '\n');
}

static __attribute__((noinline)) long long hand_clock_slow(int state)
{
    long long now = qrt__stats_clock();
    if (state == TSC_UNUSABLE || pthread_mutex_trylock(&tsc_lock) != 0)
        return now;
    state = atomic_load_explicit(&tsc_state, memory_order_relaxed);
    if (state == TSC_UNKNOWN) {
        if (tsc_invariant()) {
            tsc_origin = __rdtsc();
            tsc_origin_ns = qrt__stats_clock();
            state = TSC_MEASURING;
        } else {
            state = TSC_UNUSABLE;
        }
        atomic_store_explicit(&tsc_state, state, memory_order_release);
    } else if (state == TSC_MEASURING && now - tsc_origin_ns >= QRT_TSC_CALIBRATE_NS) {
        uint64_t ticks = __rdtsc() - tsc_origin;
        long long ns = qrt__stats_clock() - tsc_origin_ns;
        if (ticks > 0 && ns > 0) {
            tsc_ns_per_tick = (double)ns / (double)ticks;
            atomic_store_explicit(&tsc_state, TSC_READY, memory_order_release);
        } else {
            atomic_store_explicit(&tsc_state, TSC_UNUSABLE, memory_order_release);
        }
    }
    pthread_mutex_unlock(&tsc_lock);
    return now;
}

static inline long long hand_clock(void)
{
    int state = atomic_load_explicit(&tsc_state, memory_order_acquire);
    if (__builtin_expect(state == TSC_READY, 1))
        return tsc_origin_ns + (long long)((double)(int64_t)(__rdtsc() - tsc_origin) * tsc_ns_per_tick);
    return hand_clock_slow(state);
}
#else
static inline long long hand_clock(void)
{
    return qrt__stats_clock();
}
#endif

/* How soon after an answer a call counts as quick: QRT_COLOCATED_THINK_NS of the caller's own
 * time, plus what the measure itself costs (two clock reads and sched_getcpu, and on a machine
 * whose clock is a system call that is most of it): four clock reads, the cheapest of 8 (a read
 * that was preempted would make every call quick). */
static long long quick_limit(void)
{
    static _Atomic long long cached;
    long long limit = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!limit) {
        long long cheapest = LLONG_MAX;
        for (int i = 0; i < 8; i++) {
            long long a = hand_clock(), b = hand_clock();
            cheapest = b - a < cheapest ? b - a : cheapest;
        }
        limit = QRT_COLOCATED_THINK_NS + 4 * cheapest;
        atomic_store_explicit(&cached, limit, memory_order_relaxed);
    }
    return limit;
}

/* What a caller tells the serving thread it wakes (post): the CPU it runs on (+ 1), and whether
 * this call came right after its last answer, which it had from a serving thread on that CPU
 * (the clock is read only then; a stale time only makes the gap long).  The time is the thread's,
 * not the channel's: a call into another domain right after an answer counts as quick there too,
 * which only moves that domain's serving thread one call nearer to letting go. */
static __attribute__((noinline)) uint16_t caller_word(void)
{
    int cpu = sched_getcpu();
    tls_woke_cpu = cpu >= 0 && cpu + 1 < (int)QRT_CALLER_QUICK ? (uint16_t)(cpu + 1) : 0;
    uint16_t word = tls_woke_cpu;
    if (tls_quick_from && word && hand_clock() - tls_quick_from < quick_limit())
        word |= QRT_CALLER_QUICK;
    tls_quick_from = 0;
    return word;
}

static inline __attribute__((always_inline)) int post(struct qrt__chan *c, int side, uint32_t kind, uint32_t fn,
                                                     uint32_t len, uint32_t nfds)
{
#ifdef QRT_HOSTILE
    if (self_domain != QRT_MAIN_DOMAIN && hostile_post(c, &kind, &fn, &len, &nfds))
        return 0;
#endif
    c->kind = kind;
    c->fn = fn;
    c->len = len;
    c->nfds = nfds;
    uint32_t turn = side == QRT_SIDE_CALLER ? QRT_TO_SERVER : QRT_TO_CALLER;
    /* A caller whose last answer came from a serving thread on its CPU writes its word (where it
     * runs, and whether this call came right after that answer) before the call is out: that
     * thread may find the call posted on its way to sleep, and would then read the word before
     * a caller that writes it after posting had done so. */
    int told = side == QRT_SIDE_CALLER && tls_quick_from;
    if (told)
        atomic_store_explicit(&c->caller_cpu, caller_word(), memory_order_relaxed);
    if (self_domain == QRT_MAIN_DOMAIN) {
        /* Main believes only its own generation: a DEAD the domain wrote changes nothing. */
        atomic_store(&c->state, turn);
    } else {
        uint32_t expected = atomic_load(&c->state);
        while (expected != QRT_DEAD && !atomic_compare_exchange_weak(&c->state, &expected, turn))
            ;
        if (expected == QRT_DEAD)
            return -EPIPE;
    }
    uint32_t peer = side == QRT_SIDE_CALLER ? QRT_SLEEP_SERVER : QRT_SLEEP_CALLER;
    if (atomic_load(&c->sleepers) & peer) {
        if (side == QRT_SIDE_CALLER && !told) {
            /* The serving thread learns where its caller runs before it wakes (the wake-up is
             * a system call: a full barrier). */
            atomic_store_explicit(&c->caller_cpu, caller_word(), memory_order_relaxed);
        }
        futex(&c->state, FUTEX_WAKE, INT_MAX, NULL);
        tls_woke = 1;
    }
    return 0;
}

/* Who a wait is for: in the main process, the domain called, its generation when the call began
 * (a restart in between ends the wait), the watchdog's timeout and deadline, and the call's
 * channel. */
struct waiter {
    int domain;
    uint32_t generation;
    uint32_t function;
    uint32_t slot;
    uint32_t seq;
    int timeout_ms;             /* 0: no watchdog */
    long long *deadline_ms;     /* the call's, set by deadline() when first needed */
};

long long qrt__now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A call's deadline, or 0 without a watchdog.  The clock is read when the deadline is first
 * needed, not when the call begins: a call answered while its caller spins (most of them) reads
 * no clock at all.  Every wait spins at most QRT_SPIN_MAX rounds before it asks, so the deadline
 * counts from at most that long (well under a millisecond) after the call began. */
static long long deadline_at(long long *cell, int timeout_ms)
{
    if (timeout_ms <= 0)
        return 0;
    if (!*cell)
        *cell = qrt__now_ms() + timeout_ms;
    return *cell;
}

static long long deadline(const struct waiter *w)
{
    return w->timeout_ms ? deadline_at(w->deadline_ms, w->timeout_ms) : 0;
}

/* Whether the domain this wait is for died since the call began: main's own record, never a word
 * of shared memory, decides. */
static int outlived(const struct waiter *w)
{
    return self_domain == QRT_MAIN_DOMAIN && w->domain > 0 &&
           atomic_load(&domains[w->domain].generation) != w->generation;
}

/* The domain a channel leads to, found from private data only. */
static int domain_of(const struct qrt__chan *c)
{
    if (self_domain != QRT_MAIN_DOMAIN)
        return self_domain;
    for (int d = 1; d < QRT_MAX_DOMAINS; d++) {
        const struct qrt__region *r = domains[d].region;
        if (r && c >= &r->chan[0] && c < &r->chan[QRT_MAX_CHANNELS])
            return d;
    }
    abort();    /* a channel of no domain: our own bookkeeping is broken */
}


/* Whether the peer of this side is gone: the domain (seen from main) or main (from a domain). */
static int peer_gone(const struct qrt__chan *c, const struct waiter *w)
{
    if (self_domain == QRT_MAIN_DOMAIN)
        return w->domain > 0 ? outlived(w) : atomic_load(&domains[domain_of(c)].dead);
    return getppid() != qrt__main_pid;
}

/* A tuning knob from the environment, read once by each caller (which caches it + 1, so that 0
 * means "not read yet"): its value, or fallback when it is not set. */
static long env_number(const char *name, long fallback)
{
    const char *env = getenv(name);
    return env ? atol(env) : fallback;
}

static unsigned spin_floor(void)
{
    static unsigned cached;
    if (!cached)
        cached = (unsigned)env_number("QRT_SPIN_FLOOR", QRT_SPIN_MIN) + 1;
    return cached - 1;
}

static unsigned yield_rounds(void)
{
    static unsigned cached;
    if (!cached)
        cached = (unsigned)env_number("QRT_YIELD_ROUNDS", QRT_YIELD_ROUNDS) + 1;
    return cached - 1;
}

/* Whether a state word that is not our turn means the conversation is over.  In a domain, DEAD is
 * main's word that the channel is gone.  In main, only main's own generation counts: a domain
 * that writes DEAD into the shared word changes nothing. */
static int ended(uint32_t s, const struct waiter *w)
{
    if (self_domain == QRT_MAIN_DOMAIN)
        return outlived(w);
    return s == QRT_DEAD;
}

/* Spinning pays only while the peer has a core to answer on: with more waiting threads than
 * cores, a spinner takes the core its peer needs.  So no more threads of this process spin at
 * once than there are cores but one (at least one). */
static _Atomic int spinners;
static _Atomic int waiting_threads;         /* threads of this process that ever waited here */
static __thread int tls_waited;

static int max_spinners(void)
{
    static int cached;
    if (!cached) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cached = (int)env_number("QRT_SPINNERS", n > 2 ? n - 1 : 1) + 1;
    }
    return cached - 1;
}

/* A spin budget doubled (up to QRT_SPIN_MAX), or QRT_SPIN_PROBE from nothing: spinning paid. */
static inline unsigned more_spin(unsigned budget)
{
    return budget ? (budget * 2 < QRT_SPIN_MAX ? budget * 2 : QRT_SPIN_MAX) : QRT_SPIN_PROBE;
}

/* Whether it becomes this side's turn within QRT_SPIN_FREE spins (the spins a thread takes
 * before it counts among the spinners). */
static inline __attribute__((always_inline)) int caught(struct qrt__chan *c, uint32_t want)
{
    for (unsigned i = 0; i < QRT_SPIN_FREE; i++) {
        if (atomic_load_explicit(&c->state, memory_order_acquire) == want)
            return 1;
        cpu_relax();
    }
    return 0;
}

static int wait_slow(struct qrt__chan *c, uint32_t want, const struct waiter *w);

/* Waits until it is this side's turn: 0, or -EPIPE when the peer died.  The first few spins are
 * inline in each caller and free: a quick answer usually comes within them, and then the wait
 * costs no call.  Past them (or with no spin budget at all) wait_slow decides. */
static inline __attribute__((always_inline)) int wait_turn(struct qrt__chan *c, int side, const struct waiter *w)
{
    uint32_t want = side == QRT_SIDE_CALLER ? QRT_TO_CALLER : QRT_TO_SERVER;
    unsigned budget = tls_spin;
    if (__builtin_expect(budget != 0 && !tls_woke, 1) && caught(c, want)) {
        /* A quick answer is spinning that paid too: without this, only slow answers moved the
         * budget, always down, and threads stopped spinning where it pays most. */
        if (budget < QRT_SPIN_MAX)
            tls_spin = more_spin(budget);
        return 0;
    }
    return wait_slow(c, want, w);
}

/* Yields the CPU up to `rounds` times while it is not this side's turn: 0 when it became this
 * side's turn, -EPIPE when the peer died, 1 when the rounds ran out. */
static int yield_for(struct qrt__chan *c, uint32_t want, const struct waiter *w, unsigned rounds)
{
    for (unsigned i = 0; i < rounds; i++) {
        uint32_t s = atomic_load_explicit(&c->state, memory_order_acquire);
        if (s == want)
            return 0;
        if (ended(s, w))
            return -EPIPE;
        sched_yield();
    }
    return 1;
}

__attribute__((noinline)) static int wait_slow(struct qrt__chan *c, uint32_t want, const struct waiter *w)
{
    int side = want == QRT_TO_CALLER ? QRT_SIDE_CALLER : QRT_SIDE_SERVER;
    if (__builtin_expect(!tls_waited, 0)) {
        tls_waited = 1;
        atomic_fetch_add(&waiting_threads, 1);
    }
    /* A peer this thread's message had to wake from sleep answers no sooner than the scheduler
     * runs it (microseconds, tens of them where idle cores halt): spinning or yielding for it
     * would only take a core that someone else can use, so the wait sleeps at once, but for the
     * probes below.  Below saturation that is most waits, on both sides of a crossing. */
    int woke = tls_woke;
    tls_woke = 0;
    if (woke && side == QRT_SIDE_CALLER && tls_woke_cpu &&
        atomic_load_explicit(&c->server_cpu, memory_order_relaxed) == tls_woke_cpu) {
        /* The serving thread it woke keeps to this CPU: it runs when this thread gives the CPU
         * up, which yielding does without a sleep, and then it needs no wake-up to answer. */
        int rc = yield_for(c, want, w, QRT_COLOCATED_YIELDS);
        if (rc == 0)
            tls_quick_from = hand_clock();
        if (rc <= 0)
            return rc;
    } else if (woke && side == QRT_SIDE_CALLER && ++tls_wake_probe % QRT_WAKE_PROBE_EVERY == 0) {
        /* Now and then a caller waits for the answer of the peer it woke, spinning as long as
         * its last sleep for an answer took (at most QRT_WAKE_PROBE_NS).  Without it, two
         * threads that each wake the other from sleep stay so: each spins only when the other
         * is awake, and neither ever is.  A caller that catches the answer makes its next call
         * while the serving thread still waits for it (yielding, or spinning), and from there
         * both spin again. */
        long long span = tls_answer_ns < QRT_WAKE_PROBE_NS ? tls_answer_ns : QRT_WAKE_PROBE_NS;
        long long until = hand_clock() + span;
        do {
            if (caught(c, want)) {
                tls_spin = more_spin(tls_spin);
                return 0;
            }
        } while (hand_clock() < until);
    }
    /* A domain's threads spin QRT_SPIN_DOMAIN rounds at most past the free ones (some 5 us in
     * all), a budget that neither grows nor shrinks (their tls_spin, which never shrinks, only
     * keeps wait_turn's free spins).  What they wait for is main's next call, or main's answer to
     * a callback: main's own work, which in a server is a request's, while main's callers wait
     * for a component's work.  A serving thread that spins through main's
     * work takes a core from the threads doing it, the clients' requests queue behind it, and
     * the spin still "pays" when the call comes at last, so the budget grew to hundreds of
     * microseconds: on two loaded cores the server's p99 at a fixed rate was about twice the
     * bare hand-offs'.  Calls made back to back, or a few microseconds apart, still find their
     * serving thread spinning. */
    int domain = self_domain != QRT_MAIN_DOMAIN;
    unsigned budget = woke ? 0 : domain ? QRT_SPIN_DOMAIN : tls_spin;
    /* A thread of main's whose spinning stopped paying spins no more, but probes now and then
     * whether it pays again (the machine may have become idle); a probe's first spins are free
     * too.  (A domain's budget is 0 only when it woke its peer.) */
    if (budget == 0 && !woke && ++tls_probe % QRT_SPIN_PROBE_EVERY == 0) {
        budget = QRT_SPIN_PROBE;
        if (caught(c, want)) {
            tls_spin = more_spin(tls_spin);
            return 0;
        }
    }
    /* Only a process with more waiting threads than spinners allowed counts them: one with
     * fewer never touches the shared counter (a locked instruction on every wait). */
    int counted = budget && atomic_load_explicit(&waiting_threads, memory_order_relaxed) > max_spinners();
    if (counted && atomic_load_explicit(&spinners, memory_order_relaxed) >= max_spinners())
        budget = 0;
    if (budget) {
        if (counted)
            atomic_fetch_add_explicit(&spinners, 1, memory_order_relaxed);
        unsigned i = 0;
        uint32_t s = 0;
        for (; i < budget; i++) {
            s = atomic_load_explicit(&c->state, memory_order_acquire);
            if (s == want || (s == QRT_DEAD && ended(s, w)))
                break;
            cpu_relax();
        }
        if (counted)
            atomic_fetch_sub_explicit(&spinners, 1, memory_order_relaxed);
        if (i < budget) {
            if (s != want)
                return -EPIPE;
            /* The answer came while spinning: spinning pays, allow more of it. */
            tls_spin = more_spin(tls_spin);
            return 0;
        }
        /* It did not: spin less next time (halving down to the floor, or nothing when the
         * floor is 0); a domain's fixed budget stays. */
        if (!domain) {
            tls_spin /= 2;
            if (tls_spin < spin_floor())
                tls_spin = spin_floor();
        }
    }
    /* Spinning is over: a call with a watchdog starts its clock now, if it has not already. */
    deadline(w);
    /* Before sleeping, give the CPU to whoever can run (often the peer, about to answer): when
     * the answer comes within a few rounds, nobody pays for a futex wake-up.  A thread whose
     * last sleep was long yields less (halving to nothing): below saturation a serving thread
     * waits hundreds of microseconds and more for its channel's next call, and every round of
     * yielding before that sleep is a system call in vain, and a switch whenever anything else
     * can run (often another serving thread doing the same).  A short sleep restores all the
     * rounds, so threads in back-to-back calls yield as before. */
    unsigned rounds = woke ? 0 : tls_yields < yield_rounds() ? tls_yields : yield_rounds();
    int yielded = yield_for(c, want, w, rounds);
    if (yielded <= 0)
        return yielded;
    /* How long a sleep took sets the next wait's yield rounds, and a caller's wake probe.  A
     * serving thread that sleeps at once (it keeps to its caller's CPU, or woke its caller) had
     * no rounds to judge and probes nothing: it reads no clock (below saturation that is most of
     * a domain's waits: two clock reads a call), and its next wait yields as the last timed
     * sleep decided. */
    int timed = side == QRT_SIDE_CALLER || !woke;
    long long slept = timed ? hand_clock() : 0;
    tls_slept = 1;
    uint32_t mine = side == QRT_SIDE_CALLER ? QRT_SLEEP_CALLER : QRT_SLEEP_SERVER;
    atomic_fetch_or(&c->sleepers, mine);
    int rc = 0;
    for (;;) {
        uint32_t s = atomic_load(&c->state);
        if (s == want)
            break;
        if (ended(s, w)) {
            rc = -EPIPE;
            break;
        }
        /* A dead peer marks the channel (main's supervisor) or takes us with it (the kernel, for
         * a domain); the timeout is a safety net for a peer that died unnoticed, and the
         * watchdog's clock. */
        long long wait_ms = QRT_SLEEP_CHECK_S * 1000;
        long long due = deadline(w);
        if (due) {
            long long left = due - qrt__now_ms();
            if (left <= 0) {
                /* The call hung: its domain will be killed; wait for that like for any death. */
                qrt__kill_domain(w->domain, w->generation, w->function, w->slot, w->seq, -ETIMEDOUT);
                left = QRT_SLEEP_CHECK_S * 1000;
            }
            wait_ms = left < wait_ms ? left : wait_ms;
        }
        struct timespec t = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
        if (futex(&c->state, FUTEX_WAIT, s, &t) < 0 && errno == ETIMEDOUT && peer_gone(c, w)) {
            rc = -EPIPE;
            break;
        }
    }
    atomic_fetch_and(&c->sleepers, ~mine);
    atomic_thread_fence(memory_order_acquire);
    if (timed) {
        long long took = hand_clock() - slept;
        tls_yields = took < QRT_YIELD_SHORT_WAIT_NS ? UINT_MAX : rounds / 2;
        if (side == QRT_SIDE_CALLER)
            tls_answer_ns = took;
    }
    return rc;
}

/*
 * Descriptors (QPM_FD).  Each domain has a SOCK_SEQPACKET socket pair with the main process,
 * made fresh at each start of the domain (the domain's end is the one descriptor it keeps besides
 * its region); descriptors travel over it with SCM_RIGHTS, so the receiver gets descriptors of its
 * own that the kernel numbers, and neither side ever acts on a number the other names in its
 * table.  (pidfd_getfd would let main take a domain's descriptor by number without a socket, but
 * only one way, only where ptrace is allowed (Yama, seccomp and container profiles often forbid
 * it), and the domain would have to keep a returned descriptor open until main took it.)
 *
 * A message's descriptors go in one socket message, tagged with the channel and main's number
 * for the call on it, sent before the message itself is posted; the channel's header says how
 * many came.  So when a thread takes a message that carries descriptors, they are already in the
 * socket, or in the stash, where a thread that read them while looking for its own put them: one
 * box per channel, since each side sends at most one before the other answers.  Receiving never
 * waits: what a peer claims to have sent and did not is a bad message.  A thread drains the socket
 * under the domain's fd_lock until its own tag comes (at most one full round of channels, so a
 * peer sending all the time cannot keep it there); descriptors for its own channel with another
 * tag, for no channel, or malformed (a wrong count, too many, bytes that are no tag) are closed
 * at once.  In main, what a domain sent for a channel is kept only under the number of the call
 * in flight there (so it cannot displace that call's own), and the stash is swept of channels
 * whose call ended, so a hostile domain cannot make main hold more than its calls in flight
 * could carry.  Sending waits only for room in the peer's socket, and like a reply: until the
 * peer dies, or, in main, past the call's deadline, which kills it.
 */
struct fdtag {
    uint32_t slot;      /* the channel ... */
    uint32_t seq;       /* ... main's number for the call on it ... */
    uint32_t nfds;      /* ... and how many descriptors come with the tag */
};

#ifdef QRT_HOSTILE
/* Test builds only: a domain that lies about the descriptors it sends.  It may change the tag
 * and the descriptors, or send by itself (1: send nothing more). */
static int hostile_send_fds(int sock, struct fdtag *tag, int *fds);
#endif

/* The tag of a message on channel c in the conversation w: main knows both from its own records,
 * a domain from the channel, where main wrote the call's number. */
static struct fdtag tag_of(struct qrt__chan *c, const struct waiter *w, uint32_t nfds)
{
    if (self_domain == QRT_MAIN_DOMAIN)
        return (struct fdtag){w->slot, w->seq, nfds};
    return (struct fdtag){(uint32_t)(c - domains[self_domain].region->chan), c->seq, nfds};
}

static struct qrt__domain *fd_peer(const struct waiter *w)
{
    return &domains[self_domain == QRT_MAIN_DOMAIN ? w->domain : self_domain];
}

/* The peer's socket is full: waits for room while the conversation lasts (main: the domain's
 * generation, and the call's deadline, past which the domain is killed).  0, or -EPIPE. */
static int await_room(struct qrt__chan *c, const struct waiter *w, int sock)
{
    for (;;) {
        if (peer_gone(c, w))
            return -EPIPE;
        long long wait_ms = QRT_SLEEP_CHECK_S * 1000;
        long long due = self_domain == QRT_MAIN_DOMAIN ? deadline(w) : 0;
        if (due) {
            long long left = due - qrt__now_ms();
            if (left <= 0) {
                qrt__kill_domain(w->domain, w->generation, w->function, w->slot, w->seq, -ETIMEDOUT);
                left = QRT_SLEEP_CHECK_S * 1000;
            }
            wait_ms = left < wait_ms ? left : wait_ms;
        }
        struct pollfd p = {sock, POLLOUT, 0};
        if (poll(&p, 1, (int)wait_ms) > 0)
            return 0;       /* room, or an error that sending will tell */
    }
}

/* Main could not send to a domain because the domain's end of the socket is closed: it died
 * (main sees it within moments), or it closed its end itself, and is broken: killed as for a bad
 * message. */
static void socket_closed(struct qrt__chan *c, const struct waiter *w)
{
    long long until = qrt__now_ms() + QRT_SLEEP_CHECK_S * 1000;
    while (!outlived(w) && qrt__now_ms() < until) {
        struct timespec t = {0, 10000000};
        futex(&c->state, FUTEX_WAIT, atomic_load(&c->state), &t);   /* a death marks the channel */
    }
    if (!outlived(w))
        qrt__kill_domain(w->domain, w->generation, w->function, w->slot, w->seq, -EBADMSG);
}

/* Sends one tagged message with its descriptors: 0, -EPIPE when the peer is gone, or another
 * negative errno. */
static int send_tagged(struct qrt__chan *c, const struct waiter *w, int sock, struct fdtag *tag, int *fds)
{
#ifdef QRT_HOSTILE
    if (self_domain != QRT_MAIN_DOMAIN && hostile_send_fds(sock, tag, fds))
        return 0;
#endif
    uint32_t n = tag->nfds < QRT_MAX_FDS ? tag->nfds : QRT_MAX_FDS;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * QRT_MAX_FDS)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {tag, sizeof *tag};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(h), fds, n * sizeof *fds);
    for (;;) {
        if (sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN) {
            int rc = await_room(c, w, sock);
            if (rc < 0)
                return rc;
            continue;
        }
        return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ECONNREFUSED ? -EPIPE : -e;
    }
}

/* Closes the descriptors a message was given (once sent, or when it will not be). */
static void drop_given(struct qrt_wr *m)
{
    for (uint32_t i = 0; i < m->nfds; i++)
        if (m->given & (1u << i))
            close(m->fds[i]);
    m->given = 0;
}

/* Sends the descriptors of message m ahead of it, then closes those given to the runtime:
 * 0, -EPIPE when the peer is gone, or another negative errno (the message cannot be sent). */
static int send_fds(struct qrt__chan *c, const struct waiter *w, struct qrt_wr *m)
{
    struct fdtag tag = tag_of(c, w, m->nfds);
    int fds[QRT_MAX_FDS];
    memcpy(fds, m->fds, m->nfds * sizeof *fds);
    int rc = send_tagged(c, w, fd_peer(w)->fdsock, &tag, fds);
    drop_given(m);      /* in flight, the kernel holds the files */
    if (rc == -EPIPE && self_domain == QRT_MAIN_DOMAIN)
        socket_closed(c, w);
    return rc;
}

static void close_box(struct qrt__fdbox *box)
{
    for (uint32_t i = 0; i < box->n; i++)
        close(box->fds[i]);
    box->n = 0;
}

/* One message from the socket: 1 (its tag, its descriptors in box), 0 (it was malformed, and
 * what came with it is closed), or -1 (nothing more). */
static int recv_one(int sock, struct fdtag *tag, struct qrt__fdbox *box)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * QRT_MAX_FDS)];
    } ctl;
    char data[sizeof *tag + 1];
    struct iovec iov = {data, sizeof data};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    /* A peer that went with messages of ours unread leaves an error (ECONNRESET) that the socket
     * reports once, ahead of what the peer sent before it went: that is still read. */
    ssize_t n;
    int errors = 0;
    do
        n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && (errno == EINTR || (errno != EAGAIN && errno != EWOULDBLOCK && ++errors < 3)));
    if (n < 0)
        return -1;
    box->n = 0;
    /* Descriptors past QRT_MAX_FDS never arrive: the kernel drops what the buffer cannot hold. */
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof fd, sizeof fd);
            if (box->n < QRT_MAX_FDS)
                box->fds[box->n++] = fd;
            else
                close(fd);
        }
    }
    if (n == 0 && box->n == 0 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        return -1;      /* the end (the peer closed its end), or an empty message: nothing to wait for */
    memset(tag, 0, sizeof *tag);
    memcpy(tag, data, (size_t)n < sizeof *tag ? (size_t)n : sizeof *tag);
    if ((size_t)n != sizeof *tag || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || tag->nfds != box->n ||
        box->n == 0) {
        close_box(box);
        return 0;
    }
    box->seq = tag->seq;
    return 1;
}

/* Closes the stashed descriptors of channels that have no call in flight (main only). */
static void sweep(struct qrt__domain *dom)
{
    for (uint32_t i = 0; i < QRT_MAX_CHANNELS; i++)
        if (dom->stash[i].n && !qrt__channel_in_call((int)(dom - domains), i)) {
            close_box(&dom->stash[i]);
            dom->nstash--;
        }
    dom->sweep_at = dom->nstash * 2 > 64 ? dom->nstash * 2 : 64;
}

/* A message for another channel than mine, kept for that channel's thread (under fd_lock), or
 * closed: one for my channel with another tag, for no channel, or (main) for a channel whose
 * call in flight has another number, or that has none: its thread will never look. */
static void stash(struct qrt__domain *dom, const struct fdtag *tag, struct qrt__fdbox *in, uint32_t mine)
{
    int wanted = tag->slot < QRT_MAX_CHANNELS && tag->slot != mine;
    if (wanted && self_domain == QRT_MAIN_DOMAIN)
        wanted = tag->slot < atomic_load(&dom->nopen) && qrt__channel_in_call((int)(dom - domains), tag->slot) &&
                 tag->seq == atomic_load_explicit(&dom->slots[tag->slot].seq, memory_order_relaxed);
    if (wanted && !dom->stash)
        dom->stash = calloc(QRT_MAX_CHANNELS, sizeof *dom->stash);
    if (!wanted || !dom->stash) {
        close_box(in);
        return;
    }
    struct qrt__fdbox *box = &dom->stash[tag->slot];
    if (box->n)
        close_box(box);     /* one per channel: the one before was not its call's */
    else
        dom->nstash++;
    *box = *in;
    if (self_domain == QRT_MAIN_DOMAIN && dom->nstash > dom->sweep_at)
        sweep(dom);
}

/* The `want` descriptors that came with the message now on channel c: 0 (in out), or -EBADMSG
 * when the peer did not send them as it says. */
static int recv_fds(struct qrt__chan *c, const struct waiter *w, uint32_t want, int *out)
{
    struct qrt__domain *dom = fd_peer(w);
    struct fdtag mine = tag_of(c, w, want);
    struct qrt__fdbox got = {0, 0, {0}};
    int found = 0;
    pthread_mutex_lock(&dom->fd_lock);
    struct qrt__fdbox *box = dom->stash && mine.slot < QRT_MAX_CHANNELS ? &dom->stash[mine.slot] : NULL;
    if (box && box->n) {
        found = box->seq == mine.seq;
        if (found)
            got = *box;
        else
            close_box(box);
        box->n = 0;
        dom->nstash--;
    }
    for (uint32_t i = 0; !found && i <= QRT_MAX_CHANNELS; i++) {
        struct fdtag tag;
        struct qrt__fdbox in;
        int r = recv_one(dom->fdsock, &tag, &in);
        if (r < 0)
            break;
        if (r == 0)
            continue;
        if (tag.slot == mine.slot && tag.seq == mine.seq) {
            got = in;
            found = 1;
        } else {
            stash(dom, &tag, &in, mine.slot);
        }
    }
    pthread_mutex_unlock(&dom->fd_lock);
    if (!found || got.n != want) {
        close_box(&got);
        return -EBADMSG;
    }
    memcpy(out, got.fds, want * sizeof *out);
    return 0;
}

void qrt__fds_init(int d)
{
    struct qrt__domain *dom = &domains[d];
    pthread_mutex_init(&dom->fd_lock, NULL);
    dom->fdsock = -1;
    dom->sweep_at = 64;
}

int qrt__fds_attach(int d, int sock)
{
    struct qrt__domain *dom = &domains[d];
    int rc = 0;
    pthread_mutex_lock(&dom->fd_lock);
    for (uint32_t i = 0; dom->stash && i < QRT_MAX_CHANNELS; i++)
        close_box(&dom->stash[i]);
    dom->nstash = 0;
    if (dom->fdsock < 0) {
        dom->fdsock = sock;
        qrt__own_fd(sock);
    } else {
        /* The same number, atomically: a thread of the generation before that still uses it
         * reaches the fresh socket (with tags nobody waits for), never a file of the program's. */
        if (dup3(sock, dom->fdsock, O_CLOEXEC) < 0)
            rc = -errno;
        close(sock);
    }
    pthread_mutex_unlock(&dom->fd_lock);
    return rc;
}

/* The descriptors that came with a message and were not kept, closed. */
static void close_fds(struct qrt_rd *r)
{
    for (uint32_t i = 0; i < r->nfds; i++)
        if (r->fds[i] >= 0)
            close(r->fds[i]);
    r->nfds = 0;
}

/* A message's private copy given back: to the thread's scratch, or to malloc. */
static void give_copy(const uint8_t *copy, size_t mark)
{
    if (mark != SIZE_MAX)
        qrt__scratch_give(mark);
    else
        free((void *)copy);
}

/* Copies the message now in the channel into private memory: the only place it is read from.
 * A message that fits `small` (16-byte aligned, like malloc's) goes there; a larger one into the
 * thread's scratch memory, or, past that, malloc'd (release_message gives it back).  Inlined
 * into each caller: as a call it cost the null call about 25 ns (bench/ipc.py --against). */
static inline __attribute__((always_inline)) int take_message(struct qrt__chan *c, uint32_t *kind, uint32_t *fn,
                                                              struct qrt_rd *r, uint8_t *small, size_t small_cap,
                                                              const struct waiter *w)
{
    uint32_t k = c->kind, f = c->fn, n = c->len, nfds = c->nfds;
    r->nfds = 0;
    if (n > QRT_CHAN_BUF || nfds > QRT_MAX_FDS)
        return -EBADMSG;
    size_t mark = SIZE_MAX;
    uint8_t *copy = small;
    if (n > small_cap) {
        copy = qrt__scratch_take(n, &mark);
        if (!copy && !(copy = malloc(n)))
            return -ENOMEM;
    }
    int rc = nfds ? recv_fds(c, w, nfds, r->fds) : 0;
    if (rc < 0) {
        if (copy != small)
            give_copy(copy, mark);
        return rc;
    }
    r->nfds = nfds;
    memcpy(copy, (const uint8_t *)c->buf, n);
    *kind = k;
    *fn = f;
    r->base = copy;
    r->mark = mark;
    r->len = n;
    r->pos = 0;
    r->err = 0;
    return 0;
}

static inline void release_message(struct qrt_rd *r, const uint8_t *small)
{
    if (r->base && r->base != small)
        give_copy(r->base, r->mark);
    r->base = NULL;
    if (r->nfds)
        close_fds(r);
}

/* Serves one call that arrived on c (its message already in r) and posts the answer; w is the
 * conversation it arrived in. */
static void serve_one(struct qrt__chan *c, int side, uint32_t fn, struct qrt_rd *r, const struct waiter *conv)
{
    struct qrt_wr w = {.base = (uint8_t *)c->buf, .cap = QRT_CHAN_BUF};
    if (!program || fn >= program->nfunctions || !program->dispatch || !program->dispatch[fn]) {
        post(c, side, QRT_K_ERROR, (uint32_t)ENOSYS, 0, 0);
        return;
    }
    struct qrt__chan *outer = tls_serving, *outer_current = tls_current;
    if (side == QRT_SIDE_SERVER)
        tls_serving = c;
    tls_current = c;
    uint32_t outer_fn = qrt__serving_fn;
    qrt__serving_fn = fn;
    int timed = self_domain == QRT_MAIN_DOMAIN && qrt__stats_timed();
    long long t0 = timed ? qrt__stats_clock() : 0;
    program->dispatch[fn](r, &w);
    if (self_domain == QRT_MAIN_DOMAIN && program->function_domain[fn] == QRT_MAIN_DOMAIN) {
        /* A domain calling a function of the main process. */
        qrt__stats_count(domain_of(c), fn, r->len + w.len, timed ? qrt__stats_clock() - t0 : -1);
    }
    qrt__serving_fn = outer_fn;
    tls_serving = outer;
    tls_current = outer_current;
    /* A result that is one of the call's own descriptors (a function returning its argument)
     * changes hands: the reply closes it once sent. */
    for (uint32_t i = 0; i < w.nfds; i++)
        if (w.given & (1u << i))
            qrt_keep_fd(r, w.fds[i]);
    /* The call's descriptors go before the answer does: when the caller sees the call return,
     * this side holds none of them (a pipe's reader can count on its end of the file). */
    close_fds(r);
    if (r->err && self_domain == QRT_MAIN_DOMAIN) {
        /* A domain's call that did not decode: the domain is broken or hostile.  Nothing was run;
         * the domain is killed and its outer call ends as the death decides. */
        drop_given(&w);
        qrt__kill_domain(conv->domain, conv->generation, conv->function, conv->slot, conv->seq, -EBADMSG);
        return;
    }
    int err = r->err ? r->err : w.err;
    if (err)
        drop_given(&w);
    else if (w.nfds)
        err = send_fds(c, conv, &w);
    if (err)
        post(c, side, QRT_K_ERROR, (uint32_t)-err, 0, 0);
    else
        post(c, side, QRT_K_RETURN, 0, (uint32_t)w.len, w.nfds);
    qrt__settle();
}

/* Whether domain d may have the main process run function (or callback) id for it: only what
 * that domain's own code calls (the build's table). */
static int may_call(int d, uint32_t id)
{
    if (id >= program->nfunctions)
        return 0;
    if (!program->may_call || !program->may_call[d])
        return 1;       /* a program table without the allow-list: every id main serves */
    return program->may_call[d][id];
}

/* The calling side of a crossing edge made by this main-process thread: a call it makes while
 * serving a domain's call to another domain is a relay, and the edge is that domain's. */
static int edge_caller(void)
{
    uint32_t served = qrt__serving_fn;
    if (tls_current && served < nfunctions && function_domain[served] > QRT_MAIN_DOMAIN)
        return domain_of(tls_current);
    return QRT_MAIN_DOMAIN;
}

/* Sends the message in c's buffer, serves whatever calls come back, and returns the answer (in
 * reply_buf when it fits, else malloc'd).  In the main process, anything from the domain that is
 * not a well-formed answer or an allowed nested call within the nesting bound is a bad message:
 * the domain is killed, and the call ends as the death decides (-EPIPE).
 *
 * With count (main's calls), the call and its argument bytes are counted once the message is
 * posted, in *count: while the peer works on it, not on the way between an answer and the next
 * call, where the peer waits (about 8 ns of a 120 ns null call, bench/ipc.py --against). */
static int converse(struct qrt__chan *c, int side, uint32_t fn, struct qrt_wr *args, struct qrt_rd *reply,
                    uint8_t *reply_buf, size_t reply_cap, const struct waiter *w, struct qrt__counter **count)
{
    int in_main = self_domain == QRT_MAIN_DOMAIN;
    if (in_main)
        c->seq = w->seq;        /* which call this is, for the domain to name if it dies */
    if (args->nfds) {
        int rc = send_fds(c, w, args);
        if (rc < 0)
            return rc;
    }
    if (post(c, side, QRT_K_CALL, fn, (uint32_t)args->len, args->nfds) < 0)
        return -EPIPE;
    if (count && (*count = qrt__stats_counter(edge_caller(), fn))) {
        qrt__stats_add(&(*count)->calls, 1);
        qrt__stats_add(&(*count)->bytes, args->len);
    }
    for (;;) {
        int rc = wait_turn(c, side, w);
        if (rc < 0)
            return rc;
        uint32_t kind = c->kind;
        if (kind == QRT_K_RETURN) {
            uint32_t f;
            rc = take_message(c, &kind, &f, reply, reply_buf, reply_cap, w);
            if (rc == 0 && f != 0) {
                release_message(reply, reply_buf);
                rc = -EBADMSG;
            }
            if (rc < 0 && in_main) {
                qrt__kill_domain(w->domain, w->generation, w->function, w->slot, w->seq, -EBADMSG);
                continue;       /* the death ends the wait */
            }
            return rc;
        }
        _Alignas(16) uint8_t small[QRT_SMALL_MESSAGE];
        uint32_t f;
        struct qrt_rd r;
        rc = take_message(c, &kind, &f, &r, small, sizeof small, w);
        int why = rc < 0 ? -EBADMSG : 0;
        if (rc == 0 && kind != QRT_K_CALL) {
            release_message(&r, small);
            if (!in_main)
                return kind == QRT_K_ERROR && f > 0 && f < 4096 ? -(int)f : -EBADMSG;
            why = -EBADMSG;     /* an error, or a kind that does not exist: the domain's fault */
        } else if (rc == 0 && in_main && (!may_call(w->domain, f) || tls_nesting >= QRT_MAX_NESTING)) {
            release_message(&r, small);
            why = tls_nesting >= QRT_MAX_NESTING ? -ELOOP : -EBADMSG;
        }
        if (why) {
            if (!in_main)
                return why;
            qrt__kill_domain(w->domain, w->generation, w->function, w->slot, w->seq, why);
            continue;
        }
        tls_nesting++;
        serve_one(c, side, f, &r, w);
        tls_nesting--;
        release_message(&r, small);
        /* A call that keeps calling back is still one call: its deadline holds. */
        long long due = in_main ? deadline(w) : 0;
        if (due && qrt__now_ms() >= due)
            qrt__kill_domain(w->domain, w->generation, w->function, w->slot, w->seq, -ETIMEDOUT);
    }
}

/*
 * Hand-offs on one core.  A call whose serving thread sleeps costs two wake-ups, and a wake-up
 * that lands on another core costs an interrupt there, and where idle cores halt (virtual
 * machines above all) the time that core takes to start again: several times a switch on one
 * core.  So a domain's serving thread woken by its caller moves to its caller's CPU and keeps to
 * it (its affinity): the caller's next wake-up then needs no other core.  The caller, seeing that
 * the thread it woke keeps to its own CPU, yields instead of sleeping: the serving thread runs at
 * once, and its answer needs no wake-up.  Having answered a caller on its own CPU, the serving
 * thread sleeps at once, as spinning would only keep the caller from running.
 *
 * That suits calls with work between them.  Calls back to back are faster with the two threads
 * spinning on two cores.  What tells them apart is the caller's own time between an answer and
 * its next call, which only the caller can see: the serving thread sees the switches too, which
 * on one core take as long as a server's work between two requests.  So a caller that had its
 * answer while yielding to a serving thread on its CPU notes the time, and when its next call
 * wakes that thread, flags the call quick (QRT_CALLER_QUICK beside its CPU) if it comes within
 * QRT_COLOCATED_THINK_NS (a loop of calls: a few hundred nanoseconds, the measure included; a
 * server: the work of a request).  A serving thread that gets QRT_COLOCATED_SHORT_GAPS quick calls in
 * a row moves to another of its CPUs, lets go of the affinity and waits as any thread does
 * (spinning while that pays), and keeps to no CPU for its next QRT_COLOCATED_PAUSE calls.  (With
 * gaps the serving thread measured itself, under 20 us 4 or even 16 times in a row, kvstore's
 * serving threads let go about once in a thousand calls at saturation, and overloaded, when a
 * thread's requests queue up, so often that the split server carried 54,000 requests/s where it
 * carried 62,000 without letting go.)  A thread that catches a call without sleeping (its caller
 * runs on another core) lets go too.  Only a domain's serving threads are moved: the program's
 * own threads are the scheduler's.
 */
static __thread uint16_t tls_keeps_to;      /* the CPU (+ 1) this serving thread keeps to; 0: none */
static __thread unsigned tls_short_gaps;    /* calls in a row that came soon after an answer */
static __thread unsigned tls_keep_pause;    /* calls left before it may keep to a CPU again */
static __thread cpu_set_t tls_allowed;      /* its affinity before it kept to one CPU */
static __thread uint16_t tls_refused;       /* the last CPU (+ 1) it could not keep to */

/* Keeps this serving thread to CPU cpu - 1, or (0) to the CPUs it had before; `away`: first
 * move to one of those other than the CPU it is on. */
static void keep_to(struct qrt__chan *c, uint16_t cpu, int away)
{
    if (cpu == tls_keeps_to || (cpu && (cpu == tls_refused || cpu - 1 >= CPU_SETSIZE)))
        return;
    if (!tls_keeps_to && sched_getaffinity(0, sizeof tls_allowed, &tls_allowed) != 0)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    if (cpu) {
        CPU_SET(cpu - 1, &one);
    } else if (away) {
        one = tls_allowed;
        int here = sched_getcpu();
        if (here >= 0 && here < CPU_SETSIZE)
            CPU_CLR(here, &one);
        if (CPU_COUNT(&one) > 0)
            (void)sched_setaffinity(0, sizeof one, &one);
    }
    if (sched_setaffinity(0, sizeof one, cpu ? &one : &tls_allowed) != 0) {
        tls_refused = cpu;  /* a CPU this thread may not use: it stays where it was */
        return;
    }
    tls_keeps_to = cpu;
    atomic_store_explicit(&c->server_cpu, cpu, memory_order_relaxed);
}

void qrt__serve(struct qrt__chan *c)
{
    static const struct waiter none = {.slot = QRT_NO_CHANNEL};
    tls_serving = c;
    qrt__serving_channel = (uint32_t)(c - domains[self_domain].region->chan);
    for (;;) {
        int colocated = tls_keeps_to && (atomic_load_explicit(&c->caller_cpu, memory_order_relaxed) &
                                         ~QRT_CALLER_QUICK) == tls_keeps_to;
        if (colocated)
            tls_woke = 1;               /* sleep at once */
        tls_slept = 0;
        if (wait_turn(c, QRT_SIDE_SERVER, &none) < 0)
            _exit(0);       /* main is gone; so are we */
        if (tls_slept) {
            /* The caller that woke this thread wrote where it runs, and whether it called right
             * after its last answer. */
            uint16_t word = atomic_load_explicit(&c->caller_cpu, memory_order_relaxed);
            /* A flag counts once: this thread may find a call posted on its way to sleep and
             * read the word before a caller that writes it after posting has, and must not take
             * the last call's flag for this one's. */
            if ((word & QRT_CALLER_QUICK) &&
                !atomic_compare_exchange_strong_explicit(&c->caller_cpu, &word, word & ~QRT_CALLER_QUICK,
                                                         memory_order_relaxed, memory_order_relaxed))
                word &= ~QRT_CALLER_QUICK;      /* the caller wrote a new one meanwhile: not this call's */
            if (colocated && (word & QRT_CALLER_QUICK)) {
                if (++tls_short_gaps >= QRT_COLOCATED_SHORT_GAPS) {
                    keep_to(c, 0, 1);
                    tls_short_gaps = 0;
                    tls_keep_pause = QRT_COLOCATED_PAUSE;
                }
            } else {
                tls_short_gaps = 0;
            }
            uint16_t cpu = word & ~QRT_CALLER_QUICK;
            if (tls_keep_pause == 0 && cpu)
                keep_to(c, cpu, 0);
        } else if (tls_keeps_to) {
            keep_to(c, 0, 0);
        }
        if (tls_keep_pause)
            tls_keep_pause--;
        _Alignas(16) uint8_t small[QRT_SMALL_MESSAGE];
        uint32_t kind, f;
        struct qrt_rd r;
        if (take_message(c, &kind, &f, &r, small, sizeof small, &none) < 0) {
            post(c, QRT_SIDE_SERVER, QRT_K_ERROR, EBADMSG, 0, 0);
            continue;
        }
        qrt__serving_seq = c->seq;
        if (kind == QRT_K_CALL)
            serve_one(c, QRT_SIDE_SERVER, f, &r, &none);
        else
            post(c, QRT_SIDE_SERVER, QRT_K_ERROR, EBADMSG, 0, 0);
        release_message(&r, small);
    }
}

/*
 * Channels, in the main process.  A thread takes a channel of domain d for its outermost call
 * into d; calls nested inside it (a callback that calls into d again) use the same channel,
 * where d's serving thread is waiting.  Between calls the channel stays the thread's own (its
 * owner), and its next call takes it back with plain stores and loads: no locked instruction on
 * the call path.  A thread with no channel takes one nobody owns, or opens a new one (the domain
 * starts a serving thread for it), or, when all are open, takes an idle one from its owner; only
 * when every channel is busy with a call does it wait, for no longer than the call's deadline.
 *
 * Taking an idle channel from its owner is a Dekker hand-shake made asymmetric: the owner
 * announces its call in a word of its own (in[d] of its caller record = the channel), then looks
 * for a claim; the taker announces its claim, then forces a full fence on every thread of the
 * process (membarrier), then looks whether the owner announced a call on the channel.  One of the
 * two sees the other: never both use the channel.  An owner that lost the channel takes its own
 * announcement back; as nobody else writes it, no word is ever left saying "busy" for a channel
 * nobody uses.  Where membarrier is not to be had, both sides use a full fence instead.
 */
static void make_release_key(void);
static __thread struct qrt__caller *tls_me;
static pthread_mutex_t callers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qrt__caller *free_callers;

/* This thread's caller record, made at its first call (NULL when out of memory). */
static struct qrt__caller *caller_self(void)
{
    if (__builtin_expect(tls_me != NULL, 1))
        return tls_me;
    pthread_once(&release_once, make_release_key);
    pthread_mutex_lock(&callers_lock);
    struct qrt__caller *me = free_callers;
    if (me)
        free_callers = me->next_free;
    pthread_mutex_unlock(&callers_lock);
    if (!me) {
        me = aligned_alloc(64, sizeof *me);
        if (!me)
            return NULL;
    }
    memset(me, 0, sizeof *me);
    pthread_setspecific(release_key, me);
    return tls_me = me;
}

static int fenced;      /* no membarrier: the owner's side takes a full fence too */

/* A process forked from the main process after it started shares its domains' memory but not
 * their supervision: calls across a boundary from it would be answered to the wrong process.
 * They fail there instead (the plan's fault value), and the first says why. */
static int forked;

static void after_fork_in_child(void)
{
    forked = 1;
    qrt__disown_fds();
}

static int refuse_forked(void)
{
    static _Atomic int said;
    if (!atomic_exchange(&said, 1))
        fprintf(stderr, "%s: quarantine: process %ld was forked from the split program after it started; "
                "calls across a boundary fail in it\n", program ? program->name : "program", (long)getpid());
    return -ECHILD;
}

void qrt__channels_init(void)
{
    fenced = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0;
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

static inline void owner_fence(void)
{
    if (fenced)
        atomic_thread_fence(memory_order_seq_cst);
    else
        atomic_signal_fence(memory_order_seq_cst);
}

static void taker_fence(void)
{
    if (fenced || syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        atomic_thread_fence(memory_order_seq_cst);
}

/* The owner's side: announces a call on channel i of domain d and says whether it is still this
 * thread's (if not, the announcement is taken back). */
static inline int enter(struct qrt__slot *s, struct qrt__caller *me, int d, uint32_t i)
{
    atomic_store_explicit(&me->in[d], i + 1, memory_order_relaxed);
    owner_fence();
    while (atomic_load_explicit(&s->claim, memory_order_acquire))
        cpu_relax();        /* a taker is deciding: wait for its verdict */
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == me)
        return 1;
    atomic_store_explicit(&me->in[d], 0, memory_order_relaxed);
    return 0;
}

/* The taker's side: takes channel i of domain d from an owner that is not in a call on it. */
static int take(struct qrt__slot *s, struct qrt__caller *me, int d, uint32_t i)
{
    /* A look without the fence first: a channel whose owner is seen in a call on it is passed
     * over without a claim or a membarrier (the look may be stale; the fenced one decides). */
    struct qrt__caller *seen = atomic_load_explicit(&s->owner, memory_order_relaxed);
    if (seen && atomic_load_explicit(&seen->in[d], memory_order_relaxed) == i + 1)
        return 0;
    uint32_t no = 0;
    if (!atomic_compare_exchange_strong(&s->claim, &no, 1))
        return 0;
    taker_fence();
    struct qrt__caller *owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
    int idle = !owner || atomic_load_explicit(&owner->in[d], memory_order_acquire) != i + 1;
    if (idle) {
        atomic_store_explicit(&me->in[d], i + 1, memory_order_relaxed);
        atomic_store_explicit(&s->owner, me, memory_order_relaxed);
    }
    atomic_store_explicit(&s->claim, 0, memory_order_release);
    return idle;
}

int qrt__channel_in_call(int d, uint32_t i)
{
    struct qrt__caller *owner = atomic_load(&domains[d].slots[i].owner);
    return owner && atomic_load(&owner->in[d]) == i + 1;
}

/* A thread that ends gives up the channels it keeps, and its record for another thread (unless
 * it ends inside a call, whose channel then stays in use). */
static void release_channels(void *record)
{
    struct qrt__caller *me = record;
    int in_call = 0;
    for (int d = 0; d < QRT_MAX_DOMAINS; d++) {
        if (tls_to[d].chan && !tls_to[d].depth) {
            struct qrt__caller *mine = me;
            atomic_compare_exchange_strong(&domains[d].slots[tls_to[d].slot].owner, &mine, NULL);
        }
        in_call |= tls_to[d].depth != 0;
        tls_to[d].chan = NULL;
    }
    tls_me = NULL;
    if (in_call)
        return;
    pthread_mutex_lock(&callers_lock);
    me->next_free = free_callers;
    free_callers = me;
    pthread_mutex_unlock(&callers_lock);
}

static void make_release_key(void)
{
    if (pthread_key_create(&release_key, release_channels) != 0)
        abort();    /* only fails when the process is out of keys: an invariant of ours broke */
}

/* Asks domain d (at generation gen) for a serving thread on channel i, once per generation. */
static int want_thread(int d, uint32_t i, uint32_t gen)
{
    struct qrt__domain *dom = &domains[d];
    int rc = 0;
    pthread_mutex_lock(&dom->lock);
    if (atomic_load(&dom->dead) || atomic_load(&dom->generation) != gen) {
        rc = -EPIPE;        /* it died meanwhile: the call faults and is issued again */
    } else if (atomic_load(&dom->slots[i].started) != gen + 1) {
        uint32_t n = atomic_load(&dom->nwanted);
        dom->region->want[n % QRT_MAX_CHANNELS] = i;
        atomic_store(&dom->nwanted, n + 1);
        atomic_store(&dom->region->wanted, n + 1);
        futex(&dom->region->wanted, FUTEX_WAKE, 1, NULL);
        atomic_store(&dom->slots[i].started, gen + 1);
    }
    pthread_mutex_unlock(&dom->lock);
    return rc;
}

/* The most channels a domain opens: QRT_MAX_CHANNELS, or fewer with QRT_CHANNELS in the
 * environment (for tests of the waiting and taking paths, and to bound a domain's threads). */
static uint32_t max_channels(void)
{
    static uint32_t cached;
    if (!cached) {
        long n = env_number("QRT_CHANNELS", QRT_MAX_CHANNELS);
        cached = n >= 1 && n <= QRT_MAX_CHANNELS ? (uint32_t)n : QRT_MAX_CHANNELS;
    }
    return cached;
}

/* Channel i of domain d if nobody owns it, made this thread's, in a call. */
static int take_free(struct qrt__slot *s, struct qrt__caller *me, int d, uint32_t i)
{
    struct qrt__caller *nobody = NULL;
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) != NULL ||
        !atomic_compare_exchange_strong(&s->owner, &nobody, me))
        return 0;
    return enter(s, me, d, i);
}

/* A channel of domain d for this thread's outermost call, made busy: its index, or a negative
 * errno. */
static long acquire(int d, struct qrt__caller *me, struct qrt_call *call)
{
    struct qrt__domain *dom = &domains[d];
    /* Start the search at a place of this thread's own, so that threads spread out. */
    uintptr_t seed = (uintptr_t)&tls_spin >> 6;
    for (;;) {
        uint32_t n = atomic_load(&dom->nopen);
        uint32_t start = n ? (uint32_t)(seed % n) : 0;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t i = (start + k) % n;
            if (take_free(&dom->slots[i], me, d, i))
                return i;
        }
        if (n < max_channels()) {
            pthread_mutex_lock(&dom->lock);
            uint32_t i = atomic_load(&dom->nopen);
            if (i < max_channels()) {
                atomic_store(&me->in[d], i + 1);
                atomic_store(&dom->slots[i].owner, me);
                atomic_store(&dom->nopen, i + 1);
            }
            pthread_mutex_unlock(&dom->lock);
            if (i < max_channels())
                return i;
            continue;
        }
        /* All open: take an idle one from its owner, or wait for one to be given back. */
        atomic_fetch_add(&dom->waiters, 1);
        uint32_t seen = atomic_load(&dom->released);
        int found = -1;
        for (uint32_t k = 0; k < n && found < 0; k++) {
            uint32_t i = (start + k) % n;
            if (take_free(&dom->slots[i], me, d, i) || take(&dom->slots[i], me, d, i))
                found = (int)i;
        }
        if (found < 0) {
            long long wait_ms = QRT_CHANNEL_POLL_MS;
            long long due = deadline_at(&call->deadline_ms, call->timeout_ms);
            if (due) {
                long long left = due - qrt__now_ms();
                if (left <= 0) {
                    atomic_fetch_sub(&dom->waiters, 1);
                    return -ETIMEDOUT;
                }
                wait_ms = left < wait_ms ? left : wait_ms;
            }
            struct timespec t = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
            futex(&dom->released, FUTEX_WAIT, seen, &t);
        }
        atomic_fetch_sub(&dom->waiters, 1);
        if (found >= 0)
            return found;
    }
}

/* Ends the call on a channel: it stays this thread's, idle.  A thread waiting for a channel (all
 * busy) that misses this one for want of a full fence finds it at its next look, within
 * QRT_CHANNEL_POLL_MS. */
static inline void release(int d, uint32_t i)
{
    struct qrt__domain *dom = &domains[d];
    (void)i;
    atomic_store_explicit(&tls_me->in[d], 0, memory_order_release);
    if (atomic_load_explicit(&dom->waiters, memory_order_relaxed)) {
        atomic_fetch_add(&dom->released, 1);
        futex(&dom->released, FUTEX_WAKE, 1, NULL);
    }
}

static inline void set_waiter(struct qrt_call *call, int domain)
{
    call->domain = domain;
    call->generation = domain > 0 ? atomic_load(&domains[domain].generation) : 0;
    call->timeout_ms = domain > 0 ? call_timeout_ms[domain] : 0;
    call->deadline_ms = 0;      /* read from the clock when first needed (deadline_at) */
}

/* A call's messages cleared for its start, its arguments to be written at base (cap bytes).  The
 * descriptor arrays are left as they are: nothing reads past nfds. */
static inline void clear_messages(struct qrt_call *call, uint8_t *base, size_t cap)
{
    call->args.base = base;
    call->args.cap = cap;
    call->args.len = 0;
    call->args.err = 0;
    call->args.nfds = call->args.given = 0;
    call->reply.base = NULL;
    call->reply.len = call->reply.pos = 0;
    call->reply.err = 0;
    call->reply.nfds = 0;
}

/* A call's state cleared for its start. */
static inline void reset_call(struct qrt_call *call)
{
    clear_messages(call, NULL, 0);
    call->chan = NULL;
    call->slot = QRT_NO_CHANNEL;
    call->seq = 0;
    call->acquired = 0;
    call->domain = 0;
}

/* The slow part of taking a channel for an outermost call into `target`: a channel (its own,
 * nobody's, new or taken), and a serving thread for it in this generation. */
__attribute__((noinline, cold)) static int begin_outermost(struct qrt_call *call, int target)
{
    struct qrt__domain *dom = &domains[target];
    if (atomic_load(&dom->dead))
        return -EPIPE;      /* restarting: the call waits for it and is then issued */
    struct tls_link *t = &tls_to[target];
    struct qrt__caller *me = caller_self();
    if (!me)
        return -ENOMEM;
    long i = t->chan && atomic_load(&dom->slots[t->slot].owner) == me && enter(&dom->slots[t->slot], me, target, t->slot)
             ? (long)t->slot : acquire(target, me, call);
    if (i < 0)
        return (int)i;
    struct qrt__slot *s = &dom->slots[i];
    if (atomic_load_explicit(&s->started, memory_order_relaxed) != call->generation + 1) {
        /* No thread serves this channel in this generation yet, so nobody reads it: clear what a
         * call of the generation before may have left in it, so that the new thread waits for
         * this call's message and serves nothing stale. */
        atomic_store(&dom->region->chan[i].state, QRT_IDLE);
        atomic_store(&dom->region->chan[i].sleepers, 0);
        atomic_store(&dom->region->chan[i].server_cpu, 0);
        int rc = want_thread(target, (uint32_t)i, call->generation);
        if (rc < 0) {
            release(target, (uint32_t)i);
            return rc;
        }
    }
    t->chan = &dom->region->chan[i];
    t->s = s;
    t->slot = (uint32_t)i;
    return (int)i;
}

static int begin_any(struct qrt_call *call, uint32_t function);

/* The start of most calls, a main-process thread's outermost call into a domain on the channel it
 * used last, still its own, idle, in the same generation: each field of the call written once,
 * and nothing read in a chain that need not be (every load here costs the null call's peer, who
 * waits for it).  Anything else takes begin_any. */
int qrt_call_begin(struct qrt_call *call, uint32_t function)
{
    if (__builtin_expect(self_domain == QRT_MAIN_DOMAIN && function < nfunctions, 1)) {
        int target = function_domain[function];
        if (target > QRT_MAIN_DOMAIN && target < QRT_MAX_DOMAINS) {
            struct tls_link *t = &tls_to[target];
            struct qrt__slot *s = t->s;
            struct qrt__caller *me = tls_me;
            uint32_t generation = atomic_load(&domains[target].generation), i = t->slot;
            if (__builtin_expect(t->chan != NULL && !t->depth && t->generation == generation && !forked, 1) &&
                atomic_load_explicit(&s->owner, memory_order_relaxed) == me && enter(s, me, target, i)) {
                struct qrt__chan *c = t->chan;
                uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed) + 1;
                atomic_store_explicit(&s->seq, seq, memory_order_relaxed);
                s->function = function;
                t->depth = 1;
                clear_messages(call, (uint8_t *)c->buf, QRT_CHAN_BUF);
                call->function = function;
                call->domain = target;
                call->generation = generation;
                call->slot = i;
                call->seq = seq;
                call->acquired = 1;
                call->timeout_ms = call_timeout_ms[target];
                call->deadline_ms = 0;
                call->chan = c;
                return 0;
            }
        }
    }
    return begin_any(call, function);
}

__attribute__((noinline)) static int begin_any(struct qrt_call *call, uint32_t function)
{
    reset_call(call);
    call->function = function;
    if (!program || function >= program->nfunctions)
        return -EINVAL;
    int target = program->function_domain[function];
    if (target < 0 || target >= program->ndomains || (self_domain == QRT_MAIN_DOMAIN && target == QRT_MAIN_DOMAIN))
        return -EINVAL;
    struct qrt__chan *c;
    if (self_domain == QRT_MAIN_DOMAIN) {
        if (forked) {
            call->domain = target;
            return refuse_forked();
        }
        struct qrt__domain *dom = &domains[target];
        struct tls_link *t = &tls_to[target];
        set_waiter(call, target);
        uint32_t generation = call->generation, i = t->slot;
        if (t->depth) {
            /* Nested in a call into the same domain: its serving thread waits on that channel,
             * in the generation of the outermost call (a restart since ends this one at once). */
            c = t->chan;
            call->generation = t->generation;
            call->seq = atomic_load_explicit(&dom->slots[i].seq, memory_order_relaxed);
        } else {
            /* Not the fast start of qrt_call_begin (its own channel, idle, in the generation of
             * its last call): a channel taken the slow way, and a serving thread for it in this
             * generation. */
            int rc = begin_outermost(call, target);
            if (rc < 0)
                return rc;
            i = (uint32_t)rc;
            c = t->chan;
            struct qrt__slot *s = t->s;
            s->function = function;
            /* The slot is this thread's while busy: its own number, stored for others to read. */
            call->seq = atomic_load_explicit(&s->seq, memory_order_relaxed) + 1;
            atomic_store_explicit(&s->seq, call->seq, memory_order_relaxed);
            t->generation = generation;
        }
        call->slot = i;
        t->depth++;
        call->acquired = 1;
    } else {
        /* From a domain, every call goes to main over the channel being served; main relays it. */
        c = tls_serving;
        if (!c)
            return -EPERM;
        set_waiter(call, 0);
    }
    call->chan = c;
    call->args.base = (uint8_t *)c->buf;
    call->args.cap = QRT_CHAN_BUF;
    return 0;
}

void *qrt_current_channel(void)
{
    return tls_current;
}

int qrt_callback_begin(struct qrt_call *call, uint32_t id, void *chan)
{
    reset_call(call);
    call->function = id;
    if (!program || id >= program->nfunctions || !chan)
        return -EINVAL;
    struct qrt__chan *c = chan;
    call->chan = c;
    call->args.base = (uint8_t *)c->buf;
    call->args.cap = QRT_CHAN_BUF;
    int d = domain_of(c);
    set_waiter(call, self_domain == QRT_MAIN_DOMAIN ? d : 0);
    if (self_domain == QRT_MAIN_DOMAIN) {
        call->slot = (uint32_t)(c - domains[d].region->chan);
        /* Part of the call running there ... */
        call->seq = atomic_load_explicit(&domains[d].slots[call->slot].seq, memory_order_relaxed);
        if (tls_to[d].depth)
            call->generation = tls_to[d].generation;    /* ... and of its generation */
    }
    return 0;
}

int qrt_call_invoke(struct qrt_call *call)
{
    struct qrt__chan *c = call->chan;
    if (call->args.err)
        return call->args.err;
    int side = self_domain == QRT_MAIN_DOMAIN ? QRT_SIDE_CALLER : QRT_SIDE_SERVER;
    struct waiter w = {call->domain, call->generation, call->function, call->slot, call->seq,
                       call->timeout_ms, &call->deadline_ms};
    int in_main = self_domain == QRT_MAIN_DOMAIN;
    int timed = in_main && qrt__stats_timed();
    long long t0 = timed ? qrt__stats_clock() : 0;
    struct qrt__counter *k = NULL;
    int rc = converse(c, side, call->function, &call->args, &call->reply,
                      call->inline_reply, sizeof call->inline_reply, &w, in_main ? &k : NULL);
    if (k && rc == 0) {
        qrt__stats_add(&k->bytes, call->reply.len);
        if (timed) {
            qrt__stats_add(&k->timed_calls, 1);
            qrt__stats_add(&k->timed_ns, (uint64_t)(qrt__stats_clock() - t0));
        }
    } else if (k) {
        /* Not a call that was made: qrt_fault counts the attempt, as faulted, if it was one. */
        qrt__stats_add(&k->calls, (uint64_t)-1);
        qrt__stats_add(&k->bytes, (uint64_t)0 - call->args.len);
    }
    return rc;
}

void qrt_call_end(struct qrt_call *call)
{
    release_message(&call->reply, call->inline_reply);     /* and what the caller did not keep */
    if (call->acquired) {
        call->acquired = 0;
        if (--tls_to[call->domain].depth == 0)
            release(call->domain, call->slot);
    }
}

void qrt_fatal(uint32_t function, int err)
{
    const char *name = program && function < program->nfunctions ? program->functions[function] : "?";
    fprintf(stderr, "%s: quarantine: call to %s failed: %s\n",
            program ? program->name : "program", name, strerror(-err));
    _exit(70);
}

int qrt_fault(struct qrt_call *call, int err, int attempt)
{
    uint32_t function = call->function;
    int d = call->domain;
    if (self_domain != QRT_MAIN_DOMAIN || d <= 0 || d >= program->ndomains)
        qrt_fatal(function, err);
    int caller = edge_caller();
    if (err != -EPIPE && err != -EBADMSG && err != -EPROTO) {
        /* The call could not be made at all, and the domain had no part in it: every channel
         * stayed busy until the deadline (-ETIMEDOUT), or this side could not write or hold the
         * message (-E2BIG, -ENOMEM).  It fails; nothing is restarted. */
        qrt__stats_faulted(caller, function);
        return QRT_FAULT_FAIL;
    }
    /* A reply that did not decode is the domain's fault, never main's end. */
    int protocol = err != -EPIPE;
    if (protocol) {
        /* The domain answered with something malformed: it is broken (or hostile) and is treated
         * like a crashed one: killed, restarted, and the call handled by the plan's policy. */
        qrt__kill_domain(d, call->generation, function, call->slot, call->seq, err);
    }
    if (tls_to[d].depth) {
        /* Nested inside another call into the same domain, which died with it: that outer call
         * decides what happens, once this one has returned. */
        qrt__stats_faulted(caller, function);
        return QRT_FAULT_FAIL;
    }
    /* The supervisor restarts the domain (or, past max_restarts, ends the program): wait for it.
     * A call that reached the domain waits for the death of its own generation to be handled
     * (a domain killed for a bad message may not be dead yet); one that never reached it, for
     * the domain to serve. */
    struct qrt__domain *dom = &domains[d];
    int sent = call->slot != QRT_NO_CHANNEL;
    for (;;) {
        uint32_t ready = atomic_load(&dom->ready_generation);
        uint32_t now = atomic_load(&dom->generation);
        if (!atomic_load(&dom->dead) && ready == now && (!sent || now != call->generation))
            break;
        struct timespec t = {0, 100000000};
        futex(&dom->ready_generation, FUTEX_WAIT, ready, &t);
    }
    /* A call that never reached the domain, or began after it died, just waited. */
    if (call->slot == QRT_NO_CHANNEL || call->generation == atomic_load(&dom->ready_generation))
        return QRT_FAULT_WAITED;
    if (!qrt__blamed(d, call->generation, call->slot, call->seq))
        return QRT_FAULT_WAITED;      /* innocent: issued again on the fresh process */
    qrt__stats_faulted(caller, function);
    int policy = program->policies ? program->policies[d].on_fault : QRT_ON_FAULT_RETRY;
    return policy == QRT_ON_FAULT_RETRY && attempt == 0 ? QRT_FAULT_RETRY : QRT_FAULT_FAIL;
}

/*
 * Opaque handles, in the main process.  A pointer of main's that crosses to domain d as
 * QPM_OPAQUE crosses as a token (bit 63 set, which no user-space address has), and a token that
 * comes back is turned into that pointer again; a token main never handed to d is a bad message,
 * so the domain cannot make main use an address of its choosing.  A domain's own handles (bit 63
 * clear) pass through unchanged: main never looks inside them.  A domain's tokens die with it.
 */
#define QRT_TOKEN (1ull << 63)

struct handles {
    pthread_mutex_t lock;
    uintptr_t *ptr;         /* by token index */
    uint32_t n, cap;
    uint32_t *index;        /* open addressing, pointer -> token index + 1 */
    uint32_t slots;
};

static struct handles handle_tables[QRT_MAX_DOMAINS] = {
    [0 ... QRT_MAX_DOMAINS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};

static uint32_t hash_ptr(uintptr_t p, uint32_t slots)
{
    uint64_t x = (uint64_t)p * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32) & (slots - 1);
}

/* Makes room for one more handle: 0, or -ENOMEM. */
static int handles_grow(struct handles *h)
{
    if (h->n < h->cap && (h->n + 1) * 2 <= h->slots)
        return 0;
    uint32_t cap = h->cap ? h->cap * 2 : 64, slots = cap * 2;
    uintptr_t *ptr = realloc(h->ptr, cap * sizeof *ptr);
    uint32_t *index = calloc(slots, sizeof *index);
    if (!ptr || !index) {
        if (ptr)
            h->ptr = ptr;
        free(index);
        return -ENOMEM;
    }
    h->ptr = ptr;
    h->cap = cap;
    free(h->index);
    h->index = index;
    h->slots = slots;
    for (uint32_t i = 0; i < h->n; i++) {
        uint32_t k = hash_ptr(h->ptr[i], slots);
        while (index[k])
            k = (k + 1) & (slots - 1);
        index[k] = i + 1;
    }
    return 0;
}

uint64_t qrt_handle_out(int d, const void *p)
{
    if (!p || self_domain != QRT_MAIN_DOMAIN || d <= 0 || d >= QRT_MAX_DOMAINS)
        return (uint64_t)(uintptr_t)p;
    if ((uint64_t)(uintptr_t)p & QRT_TOKEN)
        return (uint64_t)(uintptr_t)p;      /* no address of main's: nothing to stand in for */
    struct handles *h = &handle_tables[d];
    uintptr_t v = (uintptr_t)p;
    pthread_mutex_lock(&h->lock);
    uint64_t token = 0;
    if (h->slots) {
        for (uint32_t k = hash_ptr(v, h->slots); h->index[k]; k = (k + 1) & (h->slots - 1))
            if (h->ptr[h->index[k] - 1] == v) {
                token = QRT_TOKEN | (h->index[k] - 1);
                break;
            }
    }
    if (!token && handles_grow(h) == 0) {
        uint32_t i = h->n++;
        h->ptr[i] = v;
        uint32_t k = hash_ptr(v, h->slots);
        while (h->index[k])
            k = (k + 1) & (h->slots - 1);
        h->index[k] = i + 1;
        token = QRT_TOKEN | i;
    }
    pthread_mutex_unlock(&h->lock);
    if (!token)
        qrt_fatal(UINT32_MAX, -ENOMEM);     /* main itself is out of memory */
    return token;
}

int qrt_handle_in(int d, uint64_t v, void **out)
{
    if (self_domain != QRT_MAIN_DOMAIN || !(v & QRT_TOKEN)) {
        *out = (void *)(uintptr_t)v;        /* NULL, or the domain's own handle */
        return 0;
    }
    if (d <= 0 || d >= QRT_MAX_DOMAINS)
        return -EBADMSG;
    struct handles *h = &handle_tables[d];
    int rc = -EBADMSG;
    pthread_mutex_lock(&h->lock);
    uint64_t i = v & ~QRT_TOKEN;
    if (i < h->n) {
        *out = (void *)h->ptr[i];
        rc = 0;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void qrt__handles_forget(int d)
{
    struct handles *h = &handle_tables[d];
    pthread_mutex_lock(&h->lock);
    h->n = 0;
    if (h->index)
        memset(h->index, 0, h->slots * sizeof *h->index);
    pthread_mutex_unlock(&h->lock);
}

int qrt_peer_domain(const struct qrt_call *call)
{
    if (call)
        return call->domain;
    return self_domain == QRT_MAIN_DOMAIN && tls_current ? domain_of(tls_current) : QRT_MAIN_DOMAIN;
}

