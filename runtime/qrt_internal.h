/* qrt_internal.h - what the runtime's own files share; generated code does not see it. */
#ifndef QRT_INTERNAL_H
#define QRT_INTERNAL_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "qrt.h"

#define QRT_MAX_DOMAINS 32
#define QRT_CHANNELS 64                 /* concurrent calling threads per domain */
#define QRT_CHAN_BUF (256u * 1024u)     /* the largest message, arguments or reply */
#define QRT_SPIN_START 2000u
#define QRT_SPIN_MIN 0u                 /* spinning that never pays stops (but is probed) */
#define QRT_SPIN_MAX 20000u
#define QRT_SPIN_PROBE 256u             /* a thread that stopped spinning tries this much ... */
#define QRT_SPIN_PROBE_EVERY 32u        /* ... once in this many waits */
#define QRT_YIELD_ROUNDS 8              /* sched_yield rounds between spinning and sleeping */
#define QRT_SLEEP_CHECK_S 1             /* a sleeper looks at its peer's health this often */
#define QRT_START_TIMEOUT_S 10
#define QRT_SMALL_MESSAGE 512           /* messages up to this size are copied onto the stack */

enum { QRT_IDLE = 0, QRT_TO_SERVER = 1, QRT_TO_CALLER = 2, QRT_DEAD = 3 };
enum { QRT_K_CALL = 1, QRT_K_RETURN = 2, QRT_K_ERROR = 3 };
enum { QRT_SIDE_CALLER = 0, QRT_SIDE_SERVER = 1 };
enum { QRT_SLEEP_CALLER = 1, QRT_SLEEP_SERVER = 2 };

struct qrt__chan {
    _Atomic uint32_t state;      /* whose turn it is; the futex word */
    _Atomic uint32_t sleepers;   /* which sides are (about to be) asleep on state */
    _Atomic uint32_t owner;      /* 1 while a main-process thread holds the channel */
    uint32_t domain;             /* the domain this channel leads to (set by main; informative) */
    volatile uint32_t kind, fn, len;
    uint8_t pad[4];              /* the first 32 bytes of a message share the header's cache line */
    volatile uint8_t buf[QRT_CHAN_BUF];
};

#define QRT_CRASH_FRAMES 64

/* What a crashing domain leaves behind for the main process, which trusts none of it blindly. */
struct qrt__crash {
    _Atomic uint32_t written;    /* the first crashing thread fills it */
    int32_t signal;
    uint32_t function;           /* the function id it was serving, or UINT32_MAX */
    uint32_t nframes;
    uint64_t bias;               /* load address of the domain executable */
    uint64_t frames[QRT_CRASH_FRAMES];
};

struct qrt__region {
    _Atomic uint32_t ready;      /* the domain sets 1 once it serves; a futex word */
    uint32_t nchan;
    _Atomic uint32_t claims;     /* bumped by main when it claims a channel; a futex word */
    uint8_t pad[52];
    struct qrt__crash crash;
    struct qrt__chan chan[QRT_CHANNELS];
};

/* The main process's private view of a domain. */
struct qrt__domain {
    struct qrt__region *region;
    int memfd;
    pid_t pid;
    int pidfd;
    _Atomic int dead;
    _Atomic uint32_t generation;        /* bumped when the domain dies */
    _Atomic uint32_t ready_generation;  /* = generation once (re)started; futex word */
    _Atomic int hung;                   /* main killed it: 1 hung, 2 malformed messages ... */
    uint32_t hung_function;             /* ... during a call to this function */
    _Atomic int restarting;
    long long restarts[64];             /* monotonic ms of recent restarts, a ring */
    unsigned nrestarts;
};

extern __thread uint32_t qrt__serving_fn;
void qrt__report_dir(char *out, size_t cap);
void qrt__json_string(FILE *f, const char *s);      /* a JSON string literal, or null */
void qrt__stats_start(const struct qrt_program *p);
int qrt__stats_timed(void);
long long qrt__stats_clock(void);
void qrt__stats_count(int caller, uint32_t function, size_t bytes, long long ns);
long long qrt__now_ms(void);
void qrt__watchdog_fire(int domain, uint32_t generation, uint32_t function);
void qrt__kill_domain(int domain, uint32_t generation, uint32_t function, int why);
void qrt__write_crash_report(const struct qrt_program *p, int domain, int status, int hung,
                             const struct qrt__crash *crash, long long recovery_ns, const char *outcome);

void qrt__set_program(const struct qrt_program *p, int self);
struct qrt__domain *qrt__domain(int d);
void qrt__serve(struct qrt__chan *c);
void qrt__wake_all(_Atomic uint32_t *word);

#endif /* QRT_INTERNAL_H */
