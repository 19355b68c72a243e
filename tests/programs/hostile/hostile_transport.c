/*
 * hostile_transport.c - the runtime's transport as a hostile domain runs it: linked into a real
 * domain executable in place of runtime/transport.c, it serves calls honestly except that, at a
 * rate of FUZZ_RATE per million messages (default 2000), it lies instead.  It
 *   - flips bytes of a reply, or lies about its length (a little, or past the channel),
 *   - sends a kind that does not exist, an error with any code, a reply for another function,
 *   - replays the message before, or calls back a function id of its choosing with garbage,
 *   - scribbles random words over its shared region (other channels' headers and buffers, the
 *     want ring, the crash record), or, in one process in four, runs a thread that rewrites the
 *     channels' buffers all the time (while main copies messages out of them),
 *   - stalls past the watchdog, exits or crashes mid-call, or leaves a forged crash record,
 *   - says descriptors come with a message that it never sent, or sends main descriptors over
 *     its socket that no message asks for (tags of any channel, any call, bytes of no tag).
 * Main must survive all of it: only its own calls into the domain may fault.  Messages and lies
 * are counted in FUZZ_COUNTER (a file of 64-bit counters shared by every incarnation).
 */
#define QRT_HOSTILE 1
#include "transport.c"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include "lie_with_fds.h"

enum { C_MESSAGES, C_LIES, C_KINDS = 2 };   /* counters: messages, lies, then one per lie */
#define LIES 17

static _Atomic uint64_t *counters;
static unsigned rate = 2000;
static pthread_once_t hostile_once = PTHREAD_ONCE_INIT;
static __thread uint64_t rng;
static __thread uint32_t last_kind = QRT_K_RETURN, last_fn, last_len, last_nfds;

static uint64_t next(void)
{
    if (!rng)
        rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&rng ^
              (uint64_t)time(NULL);
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Rewrites the buffers of the channels in use, all the time. */
static void *scribbler(void *arg)
{
    struct qrt__region *r = arg;
    for (;;) {
        uint32_t n = atomic_load(&r->wanted);
        if (n == 0 || n > QRT_MAX_CHANNELS) {
            sched_yield();
            continue;
        }
        uint32_t ch = r->want[next() % n] % QRT_MAX_CHANNELS;
        volatile uint8_t *b = r->chan[ch].buf;
        for (int i = 0; i < 64; i++)
            b[next() % 4096] = (uint8_t)next();
        sched_yield();
    }
    return NULL;
}

static void hostile_start(void)
{
    const char *path = getenv("FUZZ_COUNTER"), *r = getenv("FUZZ_RATE");
    if (r)
        rate = (unsigned)atoi(r);
    if (path) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        void *m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED)
            counters = m;
        if (fd >= 0)
            close(fd);
    }
    if (next() % 4 == 0) {
        pthread_t t;
        pthread_create(&t, NULL, scribbler, domains[self_domain].region);
    }
}

static void count(int which)
{
    if (counters)
        atomic_fetch_add(&counters[which], 1);
}

/* Descriptors main never asked for: copies of /dev/null under tags of its choosing. */
static void junk_fds(void)
{
    int fds[QRT_MAX_FDS];
    uint32_t n = 1 + (uint32_t)(next() % QRT_MAX_FDS);
    for (uint32_t i = 0; i < n; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct fdtag tag = {(uint32_t)(next() % 2 ? next() % 8 : next()), (uint32_t)next(),
                        next() % 2 ? n : (uint32_t)next() % 16};
    size_t len = next() % 4 ? sizeof tag : (size_t)(next() % sizeof tag);
    lie_with_fds(domains[self_domain].fdsock, &tag, len, fds, n);
}

/* Descriptors go honestly: the lies about them are hostile_post's. */
static int hostile_send_fds(int sock, struct fdtag *tag, int *fds)
{
    (void)sock, (void)tag, (void)fds;
    return 0;
}

static int hostile_post(struct qrt__chan *c, uint32_t *kind, uint32_t *fn, uint32_t *len, uint32_t *nfds)
{
    pthread_once(&hostile_once, hostile_start);
    struct qrt__region *region = domains[self_domain].region;
    count(C_MESSAGES);
    uint32_t k = *kind, f = *fn, n = *len;
    if (next() % 1000000 >= rate) {
        last_kind = k, last_fn = f, last_len = n, last_nfds = *nfds;
        return 0;
    }
    count(C_LIES);
    int lie = (int)(next() % LIES);
    count(C_KINDS + lie);
    switch (lie) {
    case 0:     /* flip bytes of the message */
        for (int i = 0; i < 4; i++)
            c->buf[next() % (n + 16)] ^= (uint8_t)(1 + next() % 255);
        break;
    case 1:     /* a length past the channel */
        *len = QRT_CHAN_BUF + 1 + (uint32_t)(next() % (UINT32_MAX - QRT_CHAN_BUF - 1));
        break;
    case 2:     /* a length a little off */
        *len = (uint32_t)((int64_t)n + (int64_t)(next() % 33) - 16) % QRT_CHAN_BUF;
        break;
    case 3:     /* a kind that does not exist */
        *kind = (uint32_t)next() % 2 ? 4 + (uint32_t)(next() % 16) : (uint32_t)next();
        break;
    case 4:     /* an error, with any code */
        *kind = QRT_K_ERROR;
        *fn = next() % 2 ? (uint32_t)(next() % 140) : (uint32_t)next();
        *len = 0;
        break;
    case 5:     /* an answer that names a function */
        *fn = 1 + (uint32_t)(next() % 64);
        break;
    case 6:     /* the message before, again */
        *kind = last_kind, *fn = last_fn, *len = last_len, *nfds = last_nfds;
        break;
    case 7:     /* a call back to main, of a function id and arguments of its choosing */
        *kind = QRT_K_CALL;
        *fn = (uint32_t)(next() % (program->nfunctions + 4));
        *len = (uint32_t)(next() % 256);
        for (uint32_t i = 0; i < *len; i++)
            c->buf[i] = (uint8_t)next();
        break;
    case 8: {   /* random words over the shared region */
        uint8_t *base = (uint8_t *)region;
        size_t span = offsetof(struct qrt__region, chan) +
                      (size_t)(atomic_load(&region->wanted) % QRT_MAX_CHANNELS + 1) * sizeof(struct qrt__chan);
        for (int i = 0; i < 16; i++)
            *(volatile uint32_t *)(base + (next() % (span / 4)) * 4) = (uint32_t)next();
        break;
    }
    case 9: {   /* stall past the watchdog */
        struct timespec t = {1, 0};
        nanosleep(&t, NULL);
        break;
    }
    case 10:    /* exit mid-call */
        _exit(3);
    case 11:    /* crash mid-call */
        raise(SIGSEGV);
        break;
    case 12: {  /* a forged crash record, then death */
        struct qrt__crash *cr = &region->crash;
        cr->signal = (int32_t)next();
        cr->function = (uint32_t)next();
        cr->channel = (uint32_t)next();
        cr->nframes = (uint32_t)next();
        cr->when_ns = next();
        cr->bias = next();
        for (int i = 0; i < QRT_CRASH_FRAMES; i++)
            cr->frames[i] = next();
        atomic_store(&cr->written, next() % 2 ? 2 : (uint32_t)next());
        raise(SIGKILL);
        break;
    }
    case 14:    /* descriptors said to come with the message, never sent */
        *nfds = next() % 2 ? 1 + (uint32_t)(next() % QRT_MAX_FDS) : (uint32_t)next();
        break;
    case 15:    /* descriptors sent that no message asks for */
        junk_fds();
        break;
    case 16:    /* it claims to keep to its caller's CPU, or to any CPU, then answers */
        atomic_store(&c->server_cpu, next() % 2 ? (uint16_t)(atomic_load(&c->caller_cpu) & ~QRT_CALLER_QUICK)
                                                : (uint16_t)next());
        break;
    default:    /* the turn handed over with no answer in it, or taken back */
        atomic_store(&c->state, next() % 2 ? QRT_DEAD : (uint32_t)next());
        atomic_store(&c->sleepers, (uint32_t)next());
        qrt__wake_all(&c->state);
        return 1;
    }
    last_kind = *kind, last_fn = *fn, last_len = *len, last_nfds = *nfds;
    return 0;
}
