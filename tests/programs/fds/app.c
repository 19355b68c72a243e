#include "api.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* main's log pipe: app_sink hands out its write end, the log is read from the other. */
static int log_pipe[2] = {-1, -1};
static char shown[64];

int app_sink(void)
{
    return fcntl(log_pipe[1], F_DUPFD_CLOEXEC, 0);
}

static int read_all(int fd, char *buf, int cap)
{
    int n = 0;
    for (ssize_t r; n < cap - 1 && (r = read(fd, buf + n, (size_t)(cap - 1 - n))) != 0; n += (int)r)
        if (r < 0)
            return -1;
    buf[n] = '\0';
    return n;
}

int app_read(int fd)
{
    return read_all(fd, shown, sizeof shown);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* Each check prints its line when verbose; returns the number of checks that failed. */
#define CHECK(ok, ...) (verbose ? printf(__VA_ARGS__), 0 : 0, !(ok))

static int through_socket(int verbose, int relayed)
{
    int sv[2];
    char buf[32];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 1;
    int n = relayed ? relay_send(sv[0], "relayed") : writer_send(sv[0], "hello");
    close(sv[0]);   /* the writer's copy is gone too: the reader sees the end */
    int got = read_all(sv[1], buf, sizeof buf);
    close(sv[1]);
    return CHECK(got == n && !strcmp(buf, relayed ? "relayed" : "hello"), "%s %d got %s\n",
                 relayed ? "relay send" : "send", n, buf);
}

static int through_pipe(int verbose)
{
    int p[2];
    char buf[32] = "";
    if (pipe(p) < 0)
        return 1;
    ssize_t w = write(p[1], "from main", 9);
    close(p[1]);
    int n = writer_drain(p[0], buf, sizeof buf - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = '\0';
    return CHECK(w == 9 && n == 9 && !strcmp(buf, "from main"), "drain %d %s\n", n, buf);
}

static int returned_pipe(int verbose, int relayed)
{
    char buf[32] = "";
    int fd = relayed ? relay_pipe("relayed pipe") : writer_pipe("from writer");
    int n = fd >= 0 ? read_all(fd, buf, sizeof buf) : -1;
    if (fd >= 0)
        close(fd);
    return CHECK(n > 0 && !strcmp(buf, relayed ? "relayed pipe" : "from writer"), "%s %s\n",
                 relayed ? "relay pipe" : "pipe", buf);
}

static int returned_file(int verbose, const char *path)
{
    char buf[32] = "";
    int fd = writer_open(path);
    int kind = fd >= 0 ? writer_kind(fd) : 0;
    int n = fd >= 0 ? read_all(fd, buf, sizeof buf) : -1;
    if (fd >= 0)
        close(fd);
    return CHECK(n == 9 && kind == 'f' && !strcmp(buf, "file text"), "open %c %s\n", kind, buf);
}

static int no_descriptor(int verbose)
{
    int closed = dup(2);
    close(closed);      /* a number that is surely no descriptor now */
    int none = writer_none(), kind = writer_kind(-1), sent = writer_send(-1, "x");
    int bad = writer_send(closed, "x");
    return CHECK(none == -1 && kind == 'n' && sent == -1 && bad == -1, "none %d kind %c send -1 %d closed %d\n",
                 none, kind, sent, bad);
}

static int echoed(int verbose)
{
    int p[2];
    char buf[32] = "";
    if (pipe(p) < 0)
        return 1;
    int kind = writer_kind(p[1]);
    int e = writer_echo(p[0]);      /* the caller's to close, unless it is the very same */
    ssize_t w = write(p[1], "echo", 4);
    close(p[1]);
    int n = e >= 0 ? read_all(e, buf, sizeof buf) : -1;
    if (e >= 0 && e != p[0])
        close(e);
    close(p[0]);
    return CHECK(kind == 'p' && w == 4 && n == 4 && !strcmp(buf, "echo"), "echo %c %s\n", kind, buf);
}

static int into_main(int verbose)
{
    char buf[32] = "";
    int n = writer_log("logged"), shown_n = writer_show("shown");
    int got = read(log_pipe[0], buf, sizeof buf - 1);
    buf[got > 0 ? got : 0] = '\0';
    return CHECK(n == 6 && got == 6 && !strcmp(buf, "logged") && shown_n == 5 && !strcmp(shown, "shown"),
                 "log %d %s show %d %s\n", n, buf, shown_n, shown);
}

/* Descriptors passed and looked at: nothing is read or written, so a call issued again (an
 * innocent one, when another thread's call crashed the domain) has the same effect. */
static int kinds(int verbose)
{
    int sv[2], p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe(p) < 0)
        return 1;
    int s = writer_kind(sv[0]), k = writer_kind(p[1]);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    return CHECK(s == 's' && k == 'p', "kinds %c %c\n", s, k);
}

static int everything(int verbose, const char *path)
{
    return through_socket(verbose, 0) + through_pipe(verbose) + returned_pipe(verbose, 0) +
           returned_file(verbose, path) + no_descriptor(verbose) + echoed(verbose) + into_main(verbose) +
           through_socket(verbose, 1) + returned_pipe(verbose, 1) + kinds(verbose);
}

/* Threads calling at once: each passes its own sockets and pipes and gets pipes back.  With
 * crashes (the first thread's, one at a time, so that each has one culprit), the others make
 * only calls that can be issued twice: a crash re-issues the calls in flight beside it. */
static int crash_every, iterations;
static _Atomic int thread_failures, crashed;

static void *worker(void *arg)
{
    int first = arg != NULL;
    for (int i = 0; i < iterations; i++) {
        if (first && crash_every && i % crash_every == crash_every / 2) {
            int p[2];
            if (pipe(p) == 0) {
                crashed += writer_crash(p[1], 1) == -1;     /* the culprit: retried, then the fault value */
                close(p[0]);
                close(p[1]);
            }
        }
        if (crash_every)
            thread_failures += kinds(0) + returned_pipe(0, 0);
        else
            thread_failures += through_socket(0, 0) + through_pipe(0) + returned_pipe(0, 0) + kinds(0);
    }
    return NULL;
}

/* Main's descriptors, once they are back to `base` (for up to 5 s): a restart's report is
 * written by main's supervisor after the callers went on, with a file and a pipe of its own. */
static int settled_fds(int base)
{
    int n = open_fds();
    for (int tries = 0; n != base && tries < 500; tries++) {
        struct timespec t = {0, 10000000};
        nanosleep(&t, NULL);
        n = open_fds();
    }
    return n;
}

static void threads(int nthreads, int n, int every)
{
    crash_every = every;
    iterations = n;
    pthread_t t[64];
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_create(&t[i], NULL, worker, i == 0 ? &t[0] : NULL);
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_join(t[i], NULL);
    printf("threads %d failures %d crashed %d\n", nthreads, (int)thread_failures, (int)crashed);
}

/* Against a domain that lies about descriptors (tests/programs/hostile/fd_transport.c): its
 * results and its calls into main carry them; calls without descriptors are unaffected.  With
 * threads, its lies name the channels of calls in flight beside; then it crashes, and its
 * restart takes whatever main still held for it. */
static _Atomic int hostile_right, hostile_faulted;

static void *hostile_worker(void *arg)
{
    (void)arg;
    char buf[32];
    for (int i = 0; i < 20; i++) {
        int fd = writer_pipe("lie");
        int n = fd >= 0 ? read_all(fd, buf, sizeof buf) : -1;
        if (fd >= 0)
            close(fd);
        hostile_right += n == 3 && !strcmp(buf, "lie");
        hostile_faulted += fd < 0;
    }
    return NULL;
}

static void hostile(int nthreads)
{
    char buf[32];
    for (int i = 0; i < 5; i++) {
        int fd = writer_pipe("lie");
        int n = fd >= 0 ? read_all(fd, buf, sizeof buf) : -1;
        if (fd >= 0)
            close(fd);
        printf("pipe %s\n", fd < 0 ? "faulted" : n == 3 && !strcmp(buf, "lie") ? "lie" : "WRONG");
    }
    for (int i = 0; i < 5; i++) {
        int n = writer_show("shown");
        printf("show %s\n", n < 0 ? "faulted" : n == 5 && !strcmp(shown, "shown") ? "shown" : "WRONG");
    }
    int failures = through_socket(0, 0) + through_pipe(0);
    printf("without descriptors back: %s\n", failures ? "FAILED" : "ok");
    if (nthreads <= 0)
        return;
    pthread_t t[64];
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_create(&t[i], NULL, hostile_worker, NULL);
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_join(t[i], NULL);
    printf("threads %d right %d faulted %d\n", nthreads, (int)hostile_right, (int)hostile_faulted);
    printf("crash %d\n", writer_crash(-1, 1));
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(log_pipe) < 0)
        return 1;
    char path[] = "/tmp/qpm-fds-XXXXXX";
    int file = mkstemp(path);
    if (file < 0 || write(file, "file text", 9) != 9)
        return 1;
    close(file);
    int base = open_fds(), writer_base = writer_open_fds();
    if (!strcmp(mode, "threads") || !strcmp(mode, "crash")) {
        threads(argc > 2 ? atoi(argv[2]) : 16, argc > 3 ? atoi(argv[3]) : 100, !strcmp(mode, "crash") ? 10 : 0);
    } else if (!strcmp(mode, "hostile")) {
        hostile(argc > 2 ? atoi(argv[2]) : 0);
    } else {
        int failures = everything(1, path);
        for (int i = 0; i < 300; i++)
            failures += everything(0, path);
        printf("failures %d\n", failures);
    }
    unlink(path);
    int now = settled_fds(base), writer_now = writer_open_fds();
    printf("main fds %s\n", now == base ? "stable" : "CHANGED");
    printf("writer fds %s\n", writer_now == writer_base || !strcmp(mode, "hostile") ? "stable" : "CHANGED");
    if (now != base || writer_now != writer_base)
        fprintf(stderr, "fds: main %d -> %d, writer %d -> %d\n", base, now, writer_base, writer_now);
    return 0;
}
