/* qrt_internal.h - what the runtime's own files share; generated code does not see it. */
#ifndef QRT_INTERNAL_H
#define QRT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "qrt.h"

#define QRT_MAX_DOMAINS 32
#define QRT_MAX_CHANNELS 4096           /* calls in flight at once into one domain */
#define QRT_CHAN_BUF QRT_MESSAGE_MAX    /* the largest message, arguments or reply */
#define QRT_SPIN_START 2000u
#define QRT_SPIN_MIN 0u                 /* spinning that never pays stops (but is probed) */
#define QRT_SPIN_MAX 20000u
#define QRT_SPIN_FREE 32u               /* spins before a thread counts among the spinners */
#define QRT_SPIN_DOMAIN 128u            /* a domain's thread spins at most this much more */
#define QRT_CHANNEL_POLL_MS 1           /* a thread waiting for a free channel looks this often */
#define QRT_SPIN_PROBE 256u             /* a thread that stopped spinning tries this much ... */
#define QRT_SPIN_PROBE_EVERY 32u        /* ... once in this many waits */
#define QRT_WAKE_PROBE_EVERY 128u       /* a caller that woke its peer spins for the answer ... */
#define QRT_WAKE_PROBE_NS 200000LL      /* ... once in this many waits, for at most this long */
#define QRT_COLOCATED_YIELDS 32u       /* a caller whose serving thread keeps to its CPU yields */
#define QRT_COLOCATED_THINK_NS 2000LL  /* a call made this soon after the caller had its answer ... */
#define QRT_COLOCATED_SHORT_GAPS 4u    /* ... this many times in a row: the serving thread lets go ... */
#define QRT_COLOCATED_PAUSE 256u       /* ... of its caller's CPU, and keeps to none for this many calls */
#define QRT_YIELD_ROUNDS 8              /* sched_yield rounds between spinning and sleeping, at most */
#define QRT_YIELD_SHORT_WAIT_NS 100000  /* a sleep shorter than this: yielding might have paid */
#define QRT_SLEEP_CHECK_S 1             /* a sleeper looks at its peer's health this often */
#define QRT_START_TIMEOUT_S 10
#define QRT_SMALL_MESSAGE 512           /* messages up to this size are copied onto the stack */
#define QRT_MAX_NESTING 32              /* calls nested across a boundary on one thread, both ways */
#define QRT_DUMP_WAIT_MS 200            /* how long a hung thread gets to record its backtrace */
#define QRT_NO_CHANNEL UINT32_MAX

enum { QRT_IDLE = 0, QRT_TO_SERVER = 1, QRT_TO_CALLER = 2, QRT_DEAD = 3 };
enum { QRT_K_CALL = 1, QRT_K_RETURN = 2, QRT_K_ERROR = 3 };
enum { QRT_SIDE_CALLER = 0, QRT_SIDE_SERVER = 1 };
enum { QRT_SLEEP_CALLER = 1, QRT_SLEEP_SERVER = 2 };
#define QRT_CALLER_QUICK 0x8000u        /* caller_cpu's flag; CPU numbers + 1 stay below it */

struct qrt__chan {
    /* A channel starts a cache line: its header and the first 32 bytes of a message travel
     * between the cores as one line (unaligned, a message's length fell in the next line, and
     * every hand-off moved two). */
    _Alignas(64) _Atomic uint32_t state;      /* whose turn it is; the futex word */
    _Atomic uint32_t sleepers;   /* which sides are (about to be) asleep on state */
    volatile uint32_t seq;       /* which call on this channel a message belongs to (for blame) */
    volatile uint32_t nfds;      /* descriptors sent beside the message, over the domain's socket */
    volatile uint32_t kind, fn, len;
    /* Where the two sides run (a CPU number + 1; 0: not known): the caller writes its CPU when
     * its message wakes the serving thread from sleep, or, after an answer it had from a serving
     * thread on its own CPU, before its next message (with QRT_CALLER_QUICK when that message
     * came right after the answer); a domain's serving thread writes the CPU it keeps to while it
     * follows its caller (see "Hand-offs on one core" in transport.c). */
    _Atomic uint16_t caller_cpu;
    _Atomic uint16_t server_cpu; /* (the first 32 bytes of a message share the header's line) */
    volatile uint8_t buf[QRT_CHAN_BUF];
};

#define QRT_CRASH_FRAMES 64

/* What a crashing domain leaves behind for the main process, which trusts none of it blindly. */
struct qrt__crash {
    _Atomic uint32_t written;    /* the first crashing thread fills it */
    int32_t signal;              /* 0: no crash, the backtrace of a hung thread asked for by main */
    uint32_t function;           /* the function id it was serving, or UINT32_MAX */
    uint32_t channel;            /* the channel it was serving, or QRT_NO_CHANNEL */
    uint32_t nframes;
    uint32_t seq;                /* the call on that channel (main's number for it) */
    uint64_t when_ns;            /* CLOCK_MONOTONIC when it was recorded */
    uint64_t bias;               /* load address of the domain executable */
    uint64_t frames[QRT_CRASH_FRAMES];
};

/* Shared by main and one domain.  Channels are opened on demand: main writes the index of each
 * channel that needs a serving thread into `want` and bumps `wanted` (a futex word); the domain
 * starts one thread per index. */
struct qrt__region {
    _Atomic uint32_t ready;      /* the domain sets 1 once it serves; a futex word */
    _Atomic uint32_t wanted;     /* entries written into want[]; a futex word */
    _Atomic uint32_t dump;       /* a channel whose serving thread should record its backtrace */
    uint8_t pad[52];
    struct qrt__crash crash;
    uint32_t want[QRT_MAX_CHANNELS];
    struct qrt__chan chan[QRT_MAX_CHANNELS];
};

/* A calling thread of the main process, as the other callers see it: in[d] is the index + 1 of
 * the channel of domain d that it is in a call on (or entering one), 0 when none.  Only the
 * thread itself writes its words; a thread taking an idle channel from its owner reads the
 * owner's.  Records are recycled, never freed, so a record read after its thread ended is
 * still memory of ours, holding another thread's words or zeros. */
struct qrt__caller {
    _Atomic uint32_t in[QRT_MAX_DOMAINS];
    struct qrt__caller *next_free;
} __attribute__((aligned(64)));

/* The main process's private view of one channel of a domain: who may use it.  Nothing here is
 * in shared memory, so a domain cannot change who owns what.  A channel belongs to the thread
 * that used it last (owner) until another thread takes it while it is idle (its owner's in[d]
 * does not name it): the owner's side of that hand-over is plain stores and loads, the taker's
 * a claim and an asymmetric fence (see transport.c). */
struct qrt__slot {
    _Atomic(struct qrt__caller *) owner;    /* the thread holding it, NULL: nobody */
    _Atomic uint32_t claim;      /* 1 while another thread tries to take it */
    _Atomic uint32_t started;    /* generation + 1 of the domain whose thread serves it, or 0 */
    uint32_t function;           /* the outermost call running on it (for blame) ... */
    _Atomic uint32_t seq;        /* ... and its number among the calls on this channel (written by
                                  * the owner only, read by others relaxed: plain moves) */
    uint8_t pad[40];             /* one cache line per slot: no false sharing between callers */
};

/* Whether a call runs on channel i of domain d now (for the report of a death). */
int qrt__channel_in_call(int d, uint32_t i);

/* The runtime's own descriptors, which the program's close, close_range and closefrom leave open
 * (process.c); qrt__close_own closes one of them, qrt__disown_fds gives them all up (a forked
 * child). */
void qrt__own_fd(int fd);
void qrt__close_own(int fd);
void qrt__disown_fds(void);

/* The thread's scratch memory (wire.c): n bytes, or NULL when they do not fit (*mark is then
 * SIZE_MAX); giving back a mark releases everything taken since. */
void *qrt__scratch_take(size_t n, size_t *mark);
void qrt__scratch_give(size_t mark);
/* Zeroes again what the last out buffer given back (qrt_out_free) had written: after the answer
 * is posted. */
void qrt__settle(void);

/* The blame for one death of a domain, kept for the callers of that generation to read. */
#define QRT_BLAME_ALL UINT32_MAX      /* a thread serving no call died: every call is a culprit */
#define QRT_BLAME_RING 64
struct qrt__blame {
    _Atomic uint32_t generation;      /* the generation that died, + 1 (0: empty) */
    _Atomic uint32_t channel;         /* the culprit's channel, or QRT_BLAME_ALL ... */
    _Atomic uint32_t seq;             /* ... and which call on it */
};

/* Descriptors that came over a domain's socket for a channel whose thread has not looked yet. */
struct qrt__fdbox {
    uint32_t seq;                /* the call they belong to */
    uint32_t n;                  /* 0: empty */
    int fds[QRT_MAX_FDS];
};

/* The main process's private view of a domain (and, in a domain, its own: the socket part). */
struct qrt__domain {
    struct qrt__region *region;
    struct qrt__slot *slots;            /* [QRT_MAX_CHANNELS] */
    _Atomic int dead;
    _Atomic uint32_t generation;        /* bumped when the domain dies */
    _Atomic uint32_t nopen;             /* channels opened so far (slots 0 .. nopen-1 in use) */
    /* Written by threads that wait for a channel: a cache line away from what every call reads. */
    _Alignas(64) _Atomic uint32_t released;     /* bumped when a channel is released while waiters wait */
    _Atomic uint32_t waiters;           /* threads waiting for a channel */
    _Alignas(64) _Atomic uint32_t nwanted;      /* serving threads asked of this generation (want[]) */
    pthread_mutex_t lock;               /* opening channels, asking for threads, signalling */
    int memfd;
    pid_t pid;
    int pidfd;
    _Atomic uint32_t ready_generation;  /* = generation once (re)started; futex word */
    _Atomic int hung;                   /* main killed it: 1 hung, 2 malformed messages, 3 nesting
                                         * past the bound ... */
    uint32_t hung_function;             /* ... during a call to this function ... */
    uint32_t hung_channel;              /* ... on this channel, ... */
    uint32_t hung_seq;                  /* ... the call of this number on it, ... */
    long long killed_ns;                /* ... at this time (qrt__stats_clock) */
    _Atomic int restarting;
    long long *restarts;                /* monotonic ms of the last max_restarts restarts, a ring */
    unsigned nrestarts;
    struct qrt__blame blame[QRT_BLAME_RING];
    /* QPM_FD (transport.c): this process's end of the socket descriptors travel over (one
     * number for the domain's whole life: a restart puts the fresh socket under it), and what
     * came for other channels, under fd_lock. */
    int fdsock;
    pthread_mutex_t fd_lock;
    struct qrt__fdbox *stash;           /* [QRT_MAX_CHANNELS], made when first needed */
    uint32_t nstash, sweep_at;          /* full boxes; a sweep when past sweep_at (main) */
};

extern __thread uint32_t qrt__serving_fn;
extern __thread uint32_t qrt__serving_channel;
extern __thread uint32_t qrt__serving_seq;
extern pid_t qrt__main_pid;                 /* in a domain: the main process, its parent */
void qrt__report_dir(char *out, size_t cap);           /* creates it */
void qrt__report_dir_name(char *out, size_t cap);      /* only names it */
void qrt__json_string(FILE *f, const char *s);      /* a JSON string literal, or null */
void qrt__stats_start(const struct qrt_program *p);
/* Whether this call is one of the sampled ones, timed: one in QRT_STATS_SAMPLE per thread, from
 * an offset of the thread's own (stats.c), given at its first call. */
#define QRT_STATS_SAMPLE 64u
extern __thread unsigned qrt__stats_tick;
int qrt__stats_timed_slow(void);
static inline int qrt__stats_timed(void)
{
    return ++qrt__stats_tick % QRT_STATS_SAMPLE == 0 && qrt__stats_timed_slow();
}
long long qrt__stats_clock(void);
/* One crossing edge's figures in the calling thread's own block (stats.c). */
struct qrt__counter {
    _Atomic uint64_t calls, faulted, bytes, timed_calls, timed_ns;
};
/* The calling thread's counter of the edge (caller -> function), or NULL (out of memory, or no
 * such edge). */
struct qrt__counter *qrt__stats_counter(int caller, uint32_t function);
/* Adds v (mod 2^64: a negative amount takes back) to a counter of this thread's own block.  A
 * block has one writer at a time (it changes hands under stats.c's lock), so a plain load and
 * store do: no locked instruction on the call path.  The writer thread reads the counters with
 * atomic loads and may see a sum a call old, or a call in flight already counted. */
static inline void qrt__stats_add(_Atomic uint64_t *x, uint64_t v)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + v, memory_order_relaxed);
}
void qrt__stats_count(int caller, uint32_t function, size_t bytes, long long ns);
void qrt__stats_faulted(int caller, uint32_t function);     /* a call attempt that faulted */
long long qrt__now_ms(void);
void qrt__kill_domain(int domain, uint32_t generation, uint32_t function, uint32_t channel, uint32_t seq,
                      int why);
/* Whether the call of number seq on channel was to blame for the death of generation. */
int qrt__blamed(int domain, uint32_t generation, uint32_t channel, uint32_t seq);
/* What main knows of a death beyond the dead process's own record. */
struct qrt__death {
    pid_t pid;                  /* the process that died */
    long long detect_ns;        /* from the fault to main seeing the process gone */
    int blame_all;              /* no one call was to blame: every call in flight was */
    unsigned nflight;           /* the functions of the calls in flight then (distinct) ... */
    uint32_t flight[QRT_CRASH_FRAMES];
    unsigned flight_calls[QRT_CRASH_FRAMES];     /* ... and how many calls of each */
};
void qrt__write_crash_report(const struct qrt_program *p, int domain, int status, int hung,
                             const struct qrt__crash *crash, const struct qrt__death *death,
                             long long recovery_ns, const char *outcome);

void qrt__set_program(const struct qrt_program *p, int self);
void qrt__handles_forget(int domain);       /* a domain died: its tokens with it */
void qrt__channels_init(void);              /* main, before any call: how channels change hands */
struct qrt__domain *qrt__domain(int d);
void qrt__serve(struct qrt__chan *c);
void qrt__fds_init(int domain);
/* Puts sock under the domain's socket number (closing the one before and every descriptor that
 * came over it and waits): 0, or a negative errno.  Takes sock. */
int qrt__fds_attach(int domain, int sock);
void qrt__wake_all(_Atomic uint32_t *word);

#endif /* QRT_INTERNAL_H */
