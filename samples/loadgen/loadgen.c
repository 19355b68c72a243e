/*
 * loadgen.c - load client for the kvstore sample server (not part of the server).
 *
 *   loadgen --port N [--threads T] [--requests R] [--set-ratio F] [--keys K] [--seconds S]
 *           [--rate Q [--drivers D]] [--latencies FILE]
 *   loadgen --help
 *
 * T connections to 127.0.0.1:N each send at most R requests, one at a time, stopping early
 * once S seconds have passed.  About F of the requests are SETs; the rest are mostly GETs,
 * with a few DELs and STATS.  Every reply is checked for the form the protocol promises.
 * Half of the SETs go to a key only this connection uses, and its next three requests check
 * that key through the server: a GET must return exactly the value just set, a DEL must
 * report DELETED, and a second GET must report NOT_FOUND (which also catches a cache that
 * kept a deleted value).
 *
 * Without --rate the load is a closed loop: each connection has a thread of its own, which sends
 * its next request as soon as the last one is answered, and a latency is the round trip.  With
 * --rate Q the load is an open loop of Q requests per second in all: once every connection is
 * open, connection i of T sends its k-th request at the intended time start + (k + i/T) * T/Q.
 * A request whose time has passed (the previous reply on its connection came late) is sent as
 * soon as that reply is in, and its latency counts from its intended time, so time spent queued
 * behind a slow reply is not hidden.  No request is due or sent after --seconds (a server too
 * slow for the rate leaves the rest unsent and uncounted), and seconds= below counts from the
 * common start.
 *
 * The open loop is driven by D threads (--drivers, default one per connection), each serving its
 * share of the connections with one poll() that waits for their replies and, with a timeout, for
 * the next request due: at each wake-up it reads every reply that came and sends every request
 * that is due.  Fewer drivers than connections cost the client fewer wake-ups, but the server
 * more: a thread that sends and then sleeps until the reply lets the kernel run the server's
 * thread on the same core and hand the core back with the reply, while one thread driving many
 * connections keeps running after a send, so the server's threads are woken on the other core,
 * and on the machines measured (docs/PERFORMANCE.md) that cost the server more than it saved
 * the client.
 *
 * The last line on stdout is
 *   loadgen: requests=<n> ok=<n> errors=<n> seconds=<f> rps=<f> ... not_sent=<n>
 * where not_sent counts the requests a connection never sent because it failed (the server went
 * away); a connection that the --seconds deadline stops counts none.  The exit status is 0
 * exactly when errors is 0, but 2 for a bad option or a --latencies file that cannot be written
 * (which is written under a name of its own and renamed once whole).
 *
 * SIGINT or SIGTERM ends the run early the way --seconds does: no new request is sent, the ones in
 * flight are answered and counted, and the last line is printed as always.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Mirrors the server's limits; a reply never exceeds "VALUE " plus the largest value. */
#define VALUE_MAX 4096
#define LINE_CAP 8192
#define KEY_CAP 64
/* A request in flight when the time is up may still take this long to be answered. */
#define GRACE_S 2.0
#define CONNECT_TIMEOUT_S 5
#define MAX_REPORTS 5 /* error messages printed per thread */

/* Round trips are counted in buckets a hundredth of a power of two wide (0.7%), from 1 us up to
 * 2^32 us (71 minutes, past any --seconds a run is given plus its backlog): a p99 compared within
 * 10% needs a finer step than the tenth of a power of two it was. */
#define LATENCY_STEPS 100.0
#define LATENCY_BUCKETS 3201

static unsigned latency_bucket(double seconds)
{
    double us = seconds * 1e6;
    if (us <= 1.0)
        return 0;
    double b = log2(us) * LATENCY_STEPS;
    return b >= LATENCY_BUCKETS - 1 ? LATENCY_BUCKETS - 1 : (unsigned)b + 1;
}

/* The upper edge of a bucket, in milliseconds. */
static double latency_edge_ms(unsigned bucket)
{
    return exp2(bucket / LATENCY_STEPS) / 1e3;
}

struct config {
    unsigned port;
    unsigned threads;
    unsigned long requests; /* per thread */
    double set_ratio;
    unsigned long keys;
    double seconds;
    double rate;            /* requests per second in all; 0: closed loop */
    unsigned drivers;       /* with a rate: threads that drive the connections (0: one each) */
    const char *latencies;  /* a file for every latency, one a line, or NULL */
};

/* Set by SIGINT or SIGTERM: no new request after it (see the top of this file). */
static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* The open loop's common start: taken once every connection is open (or failed to open). */
static struct {
    pthread_barrier_t connected, started;
    double start;
} schedule;

/* What a reply must look like to count as ok. */
enum expect {
    EXPECT_STORED,
    EXPECT_VALUE,     /* exactly "VALUE <the value this thread set>" */
    EXPECT_DELETED,
    EXPECT_NOT_FOUND,
    EXPECT_ANY_GET,   /* "VALUE ..." or "NOT_FOUND" */
    EXPECT_ANY_DEL,   /* "DELETED" or "NOT_FOUND" */
    EXPECT_STATS
};

/* Steps of the check that follows a SET of a thread-private key. */
enum phase { PHASE_FREE, PHASE_GET, PHASE_DEL, PHASE_GONE };

struct reader {
    int fd;
    size_t start, end;
    char buf[LINE_CAP];
};

/* One connection: its requests, their checks and its counts. */
struct worker {
    pthread_t thread;     /* closed loop: the connection's own thread */
    unsigned id;
    const struct config *cfg;
    double deadline;      /* no new request after this time */
    int fd;
    uint64_t rng;
    unsigned long seq;    /* numbers this thread's private keys */
    enum phase phase;
    char own_key[KEY_CAP];
    char own_value[VALUE_MAX + 1];
    size_t own_value_len;
    unsigned long requests, ok, errors;
    unsigned long not_sent;   /* requests never sent: the connection failed first */
    unsigned reports;
    struct reader rd;
    char request[LINE_CAP];
    enum expect expect;   /* of the request in flight ... */
    enum phase before;    /* ... the check's step when it was chosen ... */
    double due;           /* ... and when it was due (open loop) or sent (closed loop) */
    bool in_flight;
    uint32_t latency[LATENCY_BUCKETS]; /* answered requests by latency */
    double max_latency;
    double *took;         /* with --latencies: every latency, in the order answered ... */
    size_t ntook, took_cap;   /* ... how many, and room for how many */
};

/* Open loop: a thread that drives a share of the connections. */
struct driver {
    pthread_t thread;
    struct worker **conns;
    unsigned count;
    struct pollfd *polled;      /* scratch for poll(): the connections waiting for a reply ... */
    struct worker **waiting;    /* ... and whose they are */
};

static double now_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("loadgen: clock_gettime");
        exit(2);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Random numbers (xorshift64*, one state per thread) ---------------------------- */

static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}

static double random_unit(uint64_t *state)
{
    return (double)(next_random(state) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* Printable text with spaces, so that values exercise the "rest of the line" rule. */
static size_t random_value(uint64_t *state, char *out, size_t cap)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:";
    /* Mostly short values; one in sixteen is longer than the server's cache keeps. */
    size_t len = next_random(state) % 16 == 0 ? 900 + next_random(state) % 1200
                                               : 1 + next_random(state) % 64;
    if (len > cap)
        len = cap;
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[next_random(state) % (sizeof alphabet - 1)];
    return len;
}

/* ---- Options ----------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: loadgen --port N [--threads T] [--requests R] [--set-ratio F]\n"
            "               [--keys K] [--seconds S] [--rate Q [--drivers D]]\n"
            "               [--latencies F]\n"
            "  --port N       the server's TCP port on 127.0.0.1\n"
            "  --threads T    connections (closed loop: one thread each; default 4)\n"
            "  --requests R   requests per connection (default 1000)\n"
            "  --set-ratio F  fraction of requests that are SETs, 0..1 (default 0.2)\n"
            "  --keys K       size of the shared key space (default 1000)\n"
            "  --seconds S    stop sending after S seconds (default 30), or at SIGINT\n"
            "                 or SIGTERM; what is in flight is answered and counted\n"
            "  --rate Q       open loop: Q requests per second across all connections,\n"
            "                 each on a fixed schedule; latency counts from the time a\n"
            "                 request was due, not from when it could be sent (default:\n"
            "                 closed loop, the next request once the last is answered)\n"
            "  --drivers D    with --rate: threads that drive the connections, each its\n"
            "                 share of them with one poll() (default: one per connection)\n"
            "  --latencies F  write every request's latency to file F, in microseconds,\n"
            "                 one a line (the percentiles printed are within 0.7%% of them)\n"
            "  --help         this text\n");
}

static int parse_ulong(const char *text, unsigned long min, unsigned long max,
                       unsigned long *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

static int parse_double(const char *text, double min, double max, double *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !(value >= min && value <= max))
        return -1;
    *out = value;
    return 0;
}

/* 0: options parsed; 1: --help asked for usage; -1: a bad option (said on stderr). */
static int parse_options(int argc, char **argv, struct config *cfg)
{
    *cfg = (struct config){.threads = 4, .requests = 1000, .set_ratio = 0.2,
                           .keys = 1000, .seconds = 30.0};
    bool have_port = false;
    for (int i = 1; i < argc; i += 2) {
        const char *name = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long n;
        int rc = 0;
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
            return 1;
        if (strcmp(name, "--port") == 0) {
            rc = parse_ulong(value, 1, 65535, &n);
            cfg->port = (unsigned)n;
            have_port = rc == 0;
        } else if (strcmp(name, "--threads") == 0) {
            rc = parse_ulong(value, 1, 1024, &n);
            cfg->threads = (unsigned)n;
        } else if (strcmp(name, "--requests") == 0) {
            rc = parse_ulong(value, 1, 1000000000ul, &cfg->requests);
        } else if (strcmp(name, "--keys") == 0) {
            rc = parse_ulong(value, 1, 100000000ul, &cfg->keys);
        } else if (strcmp(name, "--set-ratio") == 0) {
            rc = parse_double(value, 0.0, 1.0, &cfg->set_ratio);
        } else if (strcmp(name, "--seconds") == 0) {
            rc = parse_double(value, 0.001, 86400.0, &cfg->seconds);
        } else if (strcmp(name, "--rate") == 0) {
            rc = parse_double(value, 0.001, 1e9, &cfg->rate);
        } else if (strcmp(name, "--drivers") == 0) {
            rc = parse_ulong(value, 1, 1024, &n);
            cfg->drivers = (unsigned)n;
        } else if (strcmp(name, "--latencies") == 0) {
            cfg->latencies = value;
            rc = value != NULL && *value != '\0' ? 0 : -1;
        } else {
            rc = -1;
        }
        if (rc != 0) {
            fprintf(stderr, "loadgen: bad or incomplete option '%s'\n", name);
            return -1;
        }
    }
    if (!have_port) {
        fprintf(stderr, "loadgen: --port is required\n");
        return -1;
    }
    if (cfg->drivers == 0 || cfg->drivers > cfg->threads)
        cfg->drivers = cfg->threads;    /* a driver with no connection would have nothing to do */
    return 0;
}

/* ---- Connection -------------------------------------------------------------------- */

/* Finishes a connect() that a signal interrupted; it keeps going in the background. */
static int wait_connected(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    do {
        n = poll(&p, 1, CONNECT_TIMEOUT_S * 1000);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0)
            errno = ETIMEDOUT;
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

static int connect_server(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    /* A send timeout also bounds a blocking connect() on Linux. */
    struct timeval tv = {.tv_sec = CONNECT_TIMEOUT_S};
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0) {
        int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
        if (rc != 0 && errno == EINTR)
            rc = wait_connected(fd);
        if (rc == 0)
            return fd;
    }
    int saved = errno;
    close(fd); /* nothing useful to do if closing a failed socket fails */
    errno = saved;
    return -1;
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Waits until fd is readable or the absolute time limit passes; 0 when readable. */
static int wait_readable(int fd, double limit)
{
    for (;;) {
        double left = limit - now_s();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(left * 1000.0) + 1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Takes one whole reply line from the buffer, NUL-terminated and without "\r\n": 1, or 0 when
 * no whole line is there yet (the partial one moved to the front), or -1 when the buffer is full
 * without one. */
static int take_line(struct reader *rd, char **line, size_t *len)
{
    char *begin = rd->buf + rd->start;
    char *nl = memchr(begin, '\n', rd->end - rd->start);
    if (nl != NULL) {
        size_t n = (size_t)(nl - begin);
        if (n > 0 && begin[n - 1] == '\r')
            n--;
        begin[n] = '\0';
        rd->start = (size_t)(nl - rd->buf) + 1;
        *line = begin;
        *len = n;
        return 1;
    }
    if (rd->start > 0) {
        memmove(rd->buf, begin, rd->end - rd->start);
        rd->end -= rd->start;
        rd->start = 0;
    }
    if (rd->end == sizeof rd->buf) {
        errno = EMSGSIZE; /* no valid reply is this long */
        return -1;
    }
    return 0;
}

/* Receives what the socket has into the buffer (flags: 0 or MSG_DONTWAIT): the bytes received,
 * or -1 with errno (ECONNRESET for the end of the stream, EAGAIN for nothing there yet). */
static ssize_t fill(struct reader *rd, int flags)
{
    ssize_t n;
    do {
        n = recv(rd->fd, rd->buf + rd->end, sizeof rd->buf - rd->end, flags);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        errno = ECONNRESET;
        return -1;
    }
    if (n > 0)
        rd->end += (size_t)n;
    return n;
}

/* Reads one reply line, NUL-terminated and without "\r\n"; -1 on error, EOF or timeout. */
static int read_line(struct reader *rd, double limit, char **line, size_t *len)
{
    for (;;) {
        int got = take_line(rd, line, len);
        if (got != 0)
            return got > 0 ? 0 : -1;
        if (wait_readable(rd->fd, limit) != 0 || fill(rd, 0) < 0)
            return -1;
    }
}

/* ---- Requests and their checks ----------------------------------------------------- */

/* Appends text to the worker's request buffer; false if it would not fit. */
static bool append(char *buf, size_t *used, const char *text, size_t len)
{
    if (len >= LINE_CAP - *used)
        return false;
    memcpy(buf + *used, text, len);
    *used += len;
    return true;
}

/* Builds "VERB key[ value]\n" in w->request; returns its length, 0 if too long. */
static size_t build_request(struct worker *w, const char *verb, const char *key,
                            const char *value, size_t value_len)
{
    size_t used = 0;
    bool ok = append(w->request, &used, verb, strlen(verb));
    if (ok && key != NULL)
        ok = append(w->request, &used, " ", 1) && append(w->request, &used, key, strlen(key));
    if (ok && value != NULL)
        ok = append(w->request, &used, " ", 1) &&
             append(w->request, &used, value, value_len);
    if (ok)
        ok = append(w->request, &used, "\n", 1);
    return ok ? used : 0;
}

static void shared_key(struct worker *w, char *key)
{
    snprintf(key, KEY_CAP, "k:%lu", (unsigned long)(next_random(&w->rng) % w->cfg->keys));
}

/* Chooses the next request, writes it into w->request and returns its length. */
static size_t next_request(struct worker *w, enum expect *expect)
{
    switch (w->phase) {
    case PHASE_GET:
        *expect = EXPECT_VALUE;
        return build_request(w, "GET", w->own_key, NULL, 0);
    case PHASE_DEL:
        *expect = EXPECT_DELETED;
        return build_request(w, "DEL", w->own_key, NULL, 0);
    case PHASE_GONE:
        *expect = EXPECT_NOT_FOUND;
        return build_request(w, "GET", w->own_key, NULL, 0);
    case PHASE_FREE:
        break;
    }

    char key[KEY_CAP];
    double r = random_unit(&w->rng);
    if (r < w->cfg->set_ratio) {
        *expect = EXPECT_STORED;
        if (next_random(&w->rng) & 1) {
            snprintf(w->own_key, sizeof w->own_key, "u:%ld:%u:%lu", (long)getpid(), w->id,
                     w->seq++);
            w->own_value_len = random_value(&w->rng, w->own_value, VALUE_MAX);
            w->phase = PHASE_GET;
            return build_request(w, "SET", w->own_key, w->own_value, w->own_value_len);
        }
        char value[VALUE_MAX];
        size_t len = random_value(&w->rng, value, sizeof value);
        shared_key(w, key);
        return build_request(w, "SET", key, value, len);
    }
    /* Spread the remaining share: 90% GET, 7% DEL, 3% STATS. */
    double rest = (r - w->cfg->set_ratio) / (1.0 - w->cfg->set_ratio);
    if (rest < 0.03) {
        *expect = EXPECT_STATS;
        return build_request(w, "STATS", NULL, NULL, 0);
    }
    shared_key(w, key);
    if (rest < 0.10) {
        *expect = EXPECT_ANY_DEL;
        return build_request(w, "DEL", key, NULL, 0);
    }
    *expect = EXPECT_ANY_GET;
    return build_request(w, "GET", key, NULL, 0);
}

/* Accepts "name=digits" for each expected name in turn, separated by single spaces. */
static bool is_stats_line(const char *s)
{
    static const char *const names[] = {"gets", "sets", "dels", "hits", "misses"};
    if (strncmp(s, "STATS", 5) != 0)
        return false;
    s += 5;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t len = strlen(names[i]);
        if (s[0] != ' ' || strncmp(s + 1, names[i], len) != 0 || s[1 + len] != '=')
            return false;
        s += len + 2;
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static bool reply_ok(const struct worker *w, enum expect expect, const char *reply, size_t len)
{
    switch (expect) {
    case EXPECT_STORED:
        return strcmp(reply, "STORED") == 0;
    case EXPECT_VALUE:
        return len == 6 + w->own_value_len && memcmp(reply, "VALUE ", 6) == 0 &&
               memcmp(reply + 6, w->own_value, w->own_value_len) == 0;
    case EXPECT_DELETED:
        return strcmp(reply, "DELETED") == 0;
    case EXPECT_NOT_FOUND:
        return strcmp(reply, "NOT_FOUND") == 0;
    case EXPECT_ANY_GET:
        return strcmp(reply, "NOT_FOUND") == 0 ||
               (strncmp(reply, "VALUE ", 6) == 0 && len - 6 <= VALUE_MAX);
    case EXPECT_ANY_DEL:
        return strcmp(reply, "DELETED") == 0 || strcmp(reply, "NOT_FOUND") == 0;
    case EXPECT_STATS:
        return is_stats_line(reply);
    }
    return false;
}

static void report(struct worker *w, const char *what, const char *detail)
{
    if (w->reports++ >= MAX_REPORTS)
        return;
    size_t len = strcspn(w->request, "\n");
    fprintf(stderr, "loadgen: connection %u: request '%.*s': %s%.80s\n", w->id,
            (int)(len > 60 ? 60 : len), w->request, what, detail);
}

/* Advances the private-key check after a reply; a failed step abandons the chain. */
static void advance_phase(struct worker *w, bool ok)
{
    static const enum phase after[] = {
        [PHASE_FREE] = PHASE_FREE,
        [PHASE_GET] = PHASE_DEL,
        [PHASE_DEL] = PHASE_GONE,
        [PHASE_GONE] = PHASE_FREE,
    };
    w->phase = ok ? after[w->phase] : PHASE_FREE;
}

/* Chooses the next request and sends it; false when the connection is unusable (counted).  Its
 * latency will count from due, the time it should have been sent, or from now if due is 0. */
static bool send_request(struct worker *w, double due)
{
    w->before = w->phase;
    size_t len = next_request(w, &w->expect);
    if (len == 0) {
        w->errors++;
        report(w, "request too long", "");
        return false;
    }
    w->requests++;
    w->due = due > 0 ? due : now_s();
    if (send_all(w->fd, w->request, len) != 0) {
        w->errors++;
        report(w, "connection failed: ", strerror(errno));
        return false;
    }
    w->in_flight = true;
    return true;
}

/* Keeps one latency for --latencies (a connection's own array: no lock). */
static void keep_latency(struct worker *w, double took)
{
    if (w->ntook == w->took_cap) {
        size_t cap = w->took_cap ? 2 * w->took_cap : 4096;
        double *more = realloc(w->took, cap * sizeof *more);
        if (more == NULL) {
            perror("loadgen: --latencies");
            exit(2);
        }
        w->took = more;
        w->took_cap = cap;
    }
    w->took[w->ntook++] = took;
}

/* --latencies: the file is written under a name of its own (path + ".partial") and renamed to
 * path once whole, so that a run that fails or is stopped leaves no half-written file. */
static char *latencies_partial;
static bool latencies_done;

static void drop_partial_latencies(void)
{
    if (latencies_partial != NULL && !latencies_done)
        unlink(latencies_partial);
}

static FILE *open_latencies(const char *path)
{
    size_t n = strlen(path) + sizeof ".partial";
    latencies_partial = malloc(n);
    if (latencies_partial == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return NULL;
    }
    snprintf(latencies_partial, n, "%s.partial", path);
    FILE *f = fopen(latencies_partial, "w");
    if (f == NULL) {
        fprintf(stderr, "loadgen: --latencies %s: %s\n", path, strerror(errno));
        return NULL;
    }
    atexit(drop_partial_latencies);
    return f;
}

/* Writes every connection's latencies to f, one a line in microseconds, closes it and gives it
 * its name: 0, or -1 (said). */
static int write_latencies(FILE *f, const char *path, const struct worker *workers, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        for (size_t k = 0; k < workers[i].ntook; k++)
            fprintf(f, "%.3f\n", workers[i].took[k] * 1e6);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed || rename(latencies_partial, path) != 0) {
        fprintf(stderr, "loadgen: --latencies %s: %s\n", path, failed ? "write error" : strerror(errno));
        return -1;
    }
    latencies_done = true;
    return 0;
}

/* Counts the reply to the request in flight, which came at time now, and checks it. */
static void finish_request(struct worker *w, const char *reply, size_t reply_len, double now)
{
    w->in_flight = false;
    double took = now - w->due;
    w->latency[latency_bucket(took)]++;
    if (took > w->max_latency)
        w->max_latency = took;
    if (w->cfg->latencies != NULL)
        keep_latency(w, took);

    bool ok = reply_ok(w, w->expect, reply, reply_len);
    if (ok) {
        w->ok++;
    } else {
        w->errors++;
        report(w, "unexpected reply: ", reply);
    }
    /* A private-key SET already moved the worker to PHASE_GET; only later steps advance. */
    if (w->before != PHASE_FREE)
        advance_phase(w, ok);
    else if (!ok)
        w->phase = PHASE_FREE;
}

/* Closed loop: sends one request and waits for its reply; false when the connection is
 * unusable. */
static bool one_request(struct worker *w)
{
    char *reply;
    size_t reply_len;
    if (!send_request(w, 0))
        return false;
    if (read_line(&w->rd, w->deadline + GRACE_S, &reply, &reply_len) != 0) {
        w->errors++;
        report(w, "connection failed: ", strerror(errno));
        return false;
    }
    finish_request(w, reply, reply_len, now_s());
    return true;
}

static void barrier_wait(pthread_barrier_t *b)
{
    int rc = pthread_barrier_wait(b);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) {
        fprintf(stderr, "loadgen: pthread_barrier_wait: %s\n", strerror(rc));
        exit(2);
    }
}

/* A connection that could not be opened: all its requests count as never sent. */
static void connect_failed(struct worker *w, int err)
{
    w->errors++;
    w->not_sent = w->cfg->requests;
    fprintf(stderr, "loadgen: connection %u: connect: %s\n", w->id, strerror(err));
}

static void close_connection(struct worker *w)
{
    if (close(w->fd) != 0)
        perror("loadgen: close");
    w->fd = -1;
    w->in_flight = false;
}

/* A connection that failed (the failure already counted): the requests it never sent are
 * counted, and it is closed. */
static void give_up(struct worker *w)
{
    w->not_sent = w->cfg->requests - w->requests;
    close_connection(w);
}

/* Closed loop: a connection's own thread. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->fd = connect_server(w->cfg->port);
    if (w->fd < 0) {
        connect_failed(w, errno);
        return NULL;
    }
    w->rd.fd = w->fd;
    while (w->requests < w->cfg->requests && now_s() < w->deadline && !stopping) {
        if (!one_request(w)) {
            give_up(w);
            return NULL;
        }
    }
    close_connection(w);
    return NULL;
}

/* Open loop: when connection w's next request is due. */
static double next_due(const struct worker *w)
{
    double interval = (double)w->cfg->threads / w->cfg->rate;
    return schedule.start + ((double)w->requests + (double)w->id / (double)w->cfg->threads) * interval;
}

/* Open loop: takes what came on a connection waiting for a reply, and the reply if it is whole;
 * false when the connection failed (counted). */
static bool receive(struct worker *w)
{
    char *reply;
    size_t len;
    int got = take_line(&w->rd, &reply, &len);
    if (got == 0) {
        if (fill(&w->rd, MSG_DONTWAIT) >= 0)
            got = take_line(&w->rd, &reply, &len);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            got = -1;
    }
    if (got > 0)
        finish_request(w, reply, len, now_s());
    if (got < 0) {
        w->errors++;
        report(w, "connection failed: ", strerror(errno));
        return false;
    }
    return true;
}

/* Open loop: one thread's connections, until each has sent what it may and had its answers.
 * Each pass sends every request that is due on a connection with nothing in flight, then waits
 * in one poll() for the replies in flight and, at most, until the next request is due. */
static void drive(struct driver *d)
{
    const struct config *cfg = d->conns[0]->cfg;
    for (;;) {
        double now = now_s(), wake = INFINITY;
        nfds_t waiting = 0;
        for (unsigned i = 0; i < d->count; i++) {
            struct worker *w = d->conns[i];
            if (w->fd < 0)
                continue;
            if (!w->in_flight) {
                double due = next_due(w);
                if (w->requests >= cfg->requests || due >= w->deadline || now >= w->deadline || stopping) {
                    close_connection(w);        /* done: the rest of its requests were never due */
                    continue;
                }
                if (due > now) {
                    wake = due < wake ? due : wake;
                    continue;
                }
                /* A line already buffered (the server sent more than it was asked for) shows no
                 * poll event: it is taken at once. */
                if (!send_request(w, due) || (w->rd.end > w->rd.start && !receive(w))) {
                    give_up(w);
                    continue;
                }
                if (!w->in_flight) {
                    wake = now;     /* answered by that line: the next request may be due */
                    continue;
                }
            }
            double limit = w->deadline + GRACE_S;
            if (now >= limit) {
                w->errors++;
                report(w, "connection failed: ", strerror(ETIMEDOUT));
                give_up(w);
                continue;
            }
            wake = limit < wake ? limit : wake;
            d->polled[waiting] = (struct pollfd){.fd = w->fd, .events = POLLIN};
            d->waiting[waiting++] = w;
        }
        if (waiting == 0 && wake == INFINITY)
            return;
        double left = wake > now ? wake - now : 0.0;
        struct timespec timeout = {.tv_sec = (time_t)left};
        timeout.tv_nsec = (long)((left - (double)timeout.tv_sec) * 1e9);
        int ready = ppoll(d->polled, waiting, &timeout, NULL);
        if (ready < 0 && errno != EINTR) {
            perror("loadgen: ppoll");
            exit(2);
        }
        for (nfds_t i = 0; ready > 0 && i < waiting; i++) {
            if (d->polled[i].revents != 0 && !receive(d->waiting[i]))
                give_up(d->waiting[i]);
        }
    }
}

/* Open loop: a driver thread opens its connections, waits for the common start, and drives them. */
static void *driver_main(void *arg)
{
    struct driver *d = arg;
    for (unsigned i = 0; i < d->count; i++) {
        struct worker *w = d->conns[i];
        w->fd = connect_server(w->cfg->port);
        if (w->fd < 0)
            connect_failed(w, errno);
        w->rd.fd = w->fd;
    }
    barrier_wait(&schedule.connected);
    barrier_wait(&schedule.started);
    for (unsigned i = 0; i < d->count; i++)
        d->conns[i]->deadline = schedule.start + d->conns[i]->cfg->seconds;
    drive(d);
    return NULL;
}

/* ---- Main -------------------------------------------------------------------------- */

static void *allocate(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    return p;
}

static void start_thread(pthread_t *thread, void *(*body)(void *), void *arg)
{
    int rc = pthread_create(thread, NULL, body, arg);
    if (rc != 0) {
        fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(rc));
        exit(2);
    }
}

static void join_thread(pthread_t thread)
{
    int rc = pthread_join(thread, NULL);
    if (rc != 0) {
        fprintf(stderr, "loadgen: pthread_join: %s\n", strerror(rc));
        exit(2);
    }
}

static struct worker *make_workers(const struct config *cfg, double deadline)
{
    struct worker *workers = allocate(cfg->threads, sizeof *workers);
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    for (unsigned i = 0; i < cfg->threads; i++) {
        struct worker *w = &workers[i];
        w->id = i;
        w->cfg = cfg;
        w->deadline = deadline;
        w->fd = -1;
        w->rng = (seed + 0x9e3779b97f4a7c15ull * (i + 1)) | 1; /* xorshift needs non-zero */
    }
    return workers;
}

/* Open loop: connection i goes to driver i mod D. */
static struct driver *make_drivers(const struct config *cfg, struct worker *workers)
{
    struct driver *drivers = allocate(cfg->drivers, sizeof *drivers);
    for (unsigned k = 0; k < cfg->drivers; k++) {
        struct driver *d = &drivers[k];
        unsigned share = (cfg->threads - k + cfg->drivers - 1) / cfg->drivers;
        d->conns = allocate(share, sizeof *d->conns);
        d->polled = allocate(share, sizeof *d->polled);
        d->waiting = allocate(share, sizeof *d->waiting);
        for (unsigned i = k; i < cfg->threads; i += cfg->drivers)
            d->conns[d->count++] = &workers[i];
    }
    return drivers;
}

int main(int argc, char **argv)
{
    struct config cfg;
    int parsed = parse_options(argc, argv, &cfg);
    if (parsed == 1) {
        usage(stdout);
        return 0;
    }
    if (parsed != 0) {
        usage(stderr);
        return 2;
    }

    /* A signal to stop ends the run as its deadline would (restarting what it interrupts). */
    struct sigaction stop = {.sa_handler = on_stop, .sa_flags = SA_RESTART};
    sigemptyset(&stop.sa_mask);
    if (sigaction(SIGINT, &stop, NULL) != 0 || sigaction(SIGTERM, &stop, NULL) != 0) {
        perror("loadgen: sigaction");
        return 2;
    }

    /* The file for --latencies is opened first: a path that cannot be written stops the run
     * before any load. */
    FILE *latencies = NULL;
    if (cfg.latencies != NULL && (latencies = open_latencies(cfg.latencies)) == NULL)
        return 2;

    double start = now_s();
    struct worker *workers = make_workers(&cfg, start + cfg.seconds);
    struct driver *drivers = NULL;
    if (cfg.rate > 0) {
        /* The drivers and this thread meet twice: once all connections are open, then once the
         * start time they share is set. */
        int rc = pthread_barrier_init(&schedule.connected, NULL, cfg.drivers + 1);
        if (rc == 0)
            rc = pthread_barrier_init(&schedule.started, NULL, cfg.drivers + 1);
        if (rc != 0) {
            fprintf(stderr, "loadgen: pthread_barrier_init: %s\n", strerror(rc));
            return 2;
        }
        drivers = make_drivers(&cfg, workers);
        for (unsigned k = 0; k < cfg.drivers; k++)
            start_thread(&drivers[k].thread, driver_main, &drivers[k]);
        barrier_wait(&schedule.connected);
        schedule.start = start = now_s();
        barrier_wait(&schedule.started);
        for (unsigned k = 0; k < cfg.drivers; k++)
            join_thread(drivers[k].thread);
    } else {
        for (unsigned i = 0; i < cfg.threads; i++)
            start_thread(&workers[i].thread, worker_main, &workers[i]);
        for (unsigned i = 0; i < cfg.threads; i++)
            join_thread(workers[i].thread);
    }

    unsigned long requests = 0, ok = 0, errors = 0, answered = 0, not_sent = 0;
    static unsigned long latency[LATENCY_BUCKETS];
    double max_latency = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        requests += workers[i].requests;
        ok += workers[i].ok;
        errors += workers[i].errors;
        not_sent += workers[i].not_sent;
        for (unsigned b = 0; b < LATENCY_BUCKETS; b++) {
            latency[b] += workers[i].latency[b];
            answered += workers[i].latency[b];
        }
        if (workers[i].max_latency > max_latency)
            max_latency = workers[i].max_latency;
    }
    if (drivers != NULL) {
        for (unsigned k = 0; k < cfg.drivers; k++) {
            free(drivers[k].conns);
            free(drivers[k].polled);
            free(drivers[k].waiting);
        }
        free(drivers);
    }
    double seconds = now_s() - start;  /* the run's, not the file's writing */
    int wrote = latencies != NULL ? write_latencies(latencies, cfg.latencies, workers, cfg.threads) : 0;
    for (unsigned i = 0; i < cfg.threads; i++)
        free(workers[i].took);
    free(workers);
    if (wrote != 0)
        return 2;
    /* Percentiles as bucket edges: at most 0.7% above the true value, printed to the nanosecond. */
    double pct[3] = {0.5, 0.99, 0.999}, at[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        unsigned long need = (unsigned long)ceil(pct[k] * (double)answered), seen = 0;
        for (unsigned b = 0; b < LATENCY_BUCKETS && answered; b++) {
            seen += latency[b];
            if (seen >= need) {
                at[k] = latency_edge_ms(b);
                break;
            }
        }
    }

    double rps = seconds > 0 ? (double)requests / seconds : 0.0;
    printf("loadgen: requests=%lu ok=%lu errors=%lu seconds=%.3f rps=%.1f p50_ms=%.6f p99_ms=%.6f "
           "p999_ms=%.6f max_ms=%.6f not_sent=%lu\n", requests, ok, errors, seconds, rps, at[0], at[1],
           at[2], max_latency * 1e3, not_sent);
    if (fflush(stdout) != 0) {
        perror("loadgen: stdout");
        return 2;
    }
    return errors == 0 ? 0 : 1;
}
