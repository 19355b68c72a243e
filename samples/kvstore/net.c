#include "qpm.h"
QPM_FILE_COMPONENT(net);

/*
 * net.c - the network front end of the kvstore server, and main().
 *
 *   kvstore [--port N] [--max-conns N] [--requests-limit N]
 *
 * The server listens on 127.0.0.1 only.  Once listening it prints
 * "kvstore listening on 127.0.0.1:<port>" so that a caller which asked for port 0 learns
 * the port the system chose.  Each connection gets a detached thread that reads request
 * lines, hands them to the protocol component and writes one reply line per request.
 *
 * SIGTERM, SIGINT or reaching --requests-limit stops the server: it stops accepting,
 * shuts down the open connections so their threads finish, prints a final
 * "kvstore stats: ..." line and exits with status 0.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvstore.h"

/* The longest valid request is "SET <key> <value>"; anything past this is rejected whole. */
#define LINE_CAP 8192u
#define THREAD_STACK (256u * 1024u)
#define DEFAULT_MAX_CONNS 2048u
#define SHUTDOWN_GRACE_S 5
#define LISTEN_BACKLOG 1024

struct options {
    unsigned port;
    unsigned max_conns;
    unsigned long long requests_limit; /* 0 = unlimited */
};

/* A connection thread's socket and its slot in the connection table. */
struct connection {
    int fd;
    size_t slot;
};

/* Buffered line reader over one socket. */
struct line_reader {
    int fd;
    size_t start, end; /* unread bytes are buf[start, end) */
    bool discarding;   /* skipping the rest of an over-long line */
    char buf[LINE_CAP];
};

enum read_status { READ_LINE, READ_TOO_LONG, READ_EOF, READ_ERROR };

/* Written by the signal handler and connection threads; read by the accept loop. */
static int wake_pipe[2] = {-1, -1};
static atomic_bool stop_requested;

static atomic_ullong requests_served;
static unsigned long long requests_limit;
static unsigned long long connections_accepted; /* touched by the accept loop only */

/*
 * Open connections, so that shutdown can wake their threads.  A slot holds a socket
 * until its thread has finished with it; the thread clears the slot before closing
 * the socket, so shutdown never touches a descriptor number that was reused.
 */
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_idle = PTHREAD_COND_INITIALIZER;
static int *conn_fds;
static size_t conn_cap;
static size_t conn_active;
static bool conn_closing;

/* A failing lock call means corrupted state; continuing would only spread the damage. */
static void check_pthread(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "kvstore: %s failed: %s\n", what, strerror(rc));
        abort();
    }
}

/* ---- Stopping ---------------------------------------------------------------------- */

/* Async-signal-safe: only write(2) and atomics. */
static void request_stop(void)
{
    int saved_errno = errno;
    atomic_store(&stop_requested, true);
    char byte = 1;
    ssize_t n;
    do {
        n = write(wake_pipe[1], &byte, 1);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the pipe is full, so a wake-up is already pending: nothing is lost. */
    errno = saved_errno;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    request_stop();
}

static int set_flags(int fd, int add, int remove)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, (flags | add) & ~remove);
}

static int setup_signals(void)
{
    if (pipe(wake_pipe) != 0) {
        perror("kvstore: pipe");
        return -1;
    }
    /* The handler must never block, whatever the accept loop is doing. */
    if (set_flags(wake_pipe[1], O_NONBLOCK, 0) != 0 ||
        fcntl(wake_pipe[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(wake_pipe[1], F_SETFD, FD_CLOEXEC) != 0) {
        perror("kvstore: fcntl");
        return -1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    /* A client that hangs up mid-reply must cost one connection, not the process. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        perror("kvstore: sigaction(SIGPIPE)");
        return -1;
    }
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        perror("kvstore: sigaction");
        return -1;
    }
    return 0;
}

/* ---- Options ----------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to, "usage: kvstore [--port N] [--max-conns N] [--requests-limit N]\n"
                "  --port N            TCP port on 127.0.0.1 (0 = any free port; default 0)\n"
                "  --max-conns N       concurrent connections (default %u)\n"
                "  --requests-limit N  exit after serving N requests (default 0 = never)\n",
            DEFAULT_MAX_CONNS);
}

static int parse_number(const char *text, unsigned long long max, unsigned long long *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > max)
        return -1;
    *out = value;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
    opt->port = 0;
    opt->max_conns = DEFAULT_MAX_CONNS;
    opt->requests_limit = 0;

    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (strcmp(name, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(name, "--port") == 0 && parse_number(value, 65535, &n) == 0) {
            opt->port = (unsigned)n;
        } else if (strcmp(name, "--max-conns") == 0 &&
                   parse_number(value, 65535, &n) == 0 && n > 0) {
            opt->max_conns = (unsigned)n;
        } else if (strcmp(name, "--requests-limit") == 0 &&
                   parse_number(value, ULLONG_MAX, &n) == 0) {
            opt->requests_limit = n;
        } else {
            fprintf(stderr, "kvstore: bad or incomplete option '%s'\n", name);
            return -1;
        }
        i++; /* every option takes one value */
    }
    return 0;
}

/* ---- Socket I/O -------------------------------------------------------------------- */

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

/* Reads more bytes into the reader's buffer; returns the count, 0 at EOF, -1 on error. */
static ssize_t fill(struct line_reader *rd)
{
    if (rd->start > 0) {
        memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
        rd->end -= rd->start;
        rd->start = 0;
    }
    for (;;) {
        ssize_t n = recv(rd->fd, rd->buf + rd->end, sizeof rd->buf - rd->end, 0);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

/*
 * Returns the next line, NUL-terminated in place with any "\r\n" or "\n" removed.  A line
 * that does not fit the buffer is reported once as READ_TOO_LONG and then skipped.
 */
static enum read_status next_line(struct line_reader *rd, char **line, size_t *len)
{
    for (;;) {
        char *begin = rd->buf + rd->start;
        char *nl = memchr(begin, '\n', rd->end - rd->start);
        if (nl != NULL) {
            rd->start = (size_t)(nl - rd->buf) + 1;
            if (rd->discarding) {
                rd->discarding = false;
                continue;
            }
            size_t n = (size_t)(nl - begin);
            if (n > 0 && begin[n - 1] == '\r')
                n--;
            begin[n] = '\0';
            *line = begin;
            *len = n;
            return READ_LINE;
        }
        if (rd->discarding) {
            rd->start = rd->end = 0;
        } else if (rd->start == 0 && rd->end == sizeof rd->buf) {
            rd->discarding = true;
            rd->start = rd->end = 0;
            return READ_TOO_LONG;
        }
        ssize_t n = fill(rd);
        if (n == 0)
            return READ_EOF; /* an unterminated last line is dropped, as it is incomplete */
        if (n < 0)
            return READ_ERROR;
        rd->end += (size_t)n;
    }
}

/* ---- Connections ------------------------------------------------------------------- */

/* Produces the reply line for one request, newline included; returns its length. */
static size_t make_reply(const char *line, size_t len, char *reply, size_t cap)
{
    static const char nul_error[] = "ERROR line contains a NUL byte";
    static const char internal_error[] = "ERROR internal error";
    int n;
    if (memchr(line, '\0', len) != NULL) {
        /* proto takes a C string, which would silently stop at the NUL. */
        memcpy(reply, nul_error, sizeof nul_error);
        n = (int)sizeof nul_error - 1;
    } else {
        n = proto_handle(line, reply, cap - 1);
        if (n < 0 || (size_t)n >= cap - 1) {
            memcpy(reply, internal_error, sizeof internal_error);
            n = (int)sizeof internal_error - 1;
        }
    }
    reply[n] = '\n';
    return (size_t)n + 1;
}

/* Counts one served request and asks for shutdown when it is the last one allowed. */
static void count_request(void)
{
    unsigned long long served = atomic_fetch_add(&requests_served, 1) + 1;
    if (requests_limit != 0 && served == requests_limit)
        request_stop();
}

static void serve(int fd)
{
    static const char too_long[] = "ERROR line too long\n";
    struct line_reader *rd = malloc(sizeof *rd);
    if (rd == NULL) {
        fprintf(stderr, "kvstore: out of memory for a connection buffer\n");
        return;
    }
    rd->fd = fd;
    rd->start = rd->end = 0;
    rd->discarding = false;

    char reply[KV_REPLY_MAX + 2]; /* reply text, then room for the newline and the NUL */
    while (!atomic_load(&stop_requested)) {
        char *line;
        size_t len;
        enum read_status status = next_line(rd, &line, &len);
        int rc;
        if (status == READ_LINE)
            rc = send_all(fd, reply, make_reply(line, len, reply, sizeof reply));
        else if (status == READ_TOO_LONG)
            rc = send_all(fd, too_long, sizeof too_long - 1);
        else
            break;
        if (rc != 0)
            break;
        count_request();
    }
    free(rd);
}

/* Reserves a table slot for fd; returns false when the server is full or stopping. */
static bool conn_register(int fd, size_t *slot)
{
    bool ok = false;
    check_pthread(pthread_mutex_lock(&conn_lock), "pthread_mutex_lock");
    if (!conn_closing && conn_active < conn_cap) {
        for (size_t i = 0; i < conn_cap; i++) {
            if (conn_fds[i] < 0) {
                conn_fds[i] = fd;
                conn_active++;
                *slot = i;
                ok = true;
                break;
            }
        }
    }
    check_pthread(pthread_mutex_unlock(&conn_lock), "pthread_mutex_unlock");
    return ok;
}

static void conn_release(size_t slot)
{
    check_pthread(pthread_mutex_lock(&conn_lock), "pthread_mutex_lock");
    conn_fds[slot] = -1;
    if (--conn_active == 0)
        check_pthread(pthread_cond_broadcast(&conn_idle), "pthread_cond_broadcast");
    check_pthread(pthread_mutex_unlock(&conn_lock), "pthread_mutex_unlock");
}

static void close_socket(int fd)
{
    /* Retrying close() after EINTR could close a reused descriptor, so it is not retried. */
    if (close(fd) != 0 && errno != EINTR)
        perror("kvstore: close");
}

static void *connection_thread(void *arg)
{
    struct connection conn = *(struct connection *)arg;
    free(arg);
    serve(conn.fd);
    conn_release(conn.slot);
    close_socket(conn.fd);
    return NULL;
}

static int start_thread(int fd, size_t slot)
{
    struct connection *conn = malloc(sizeof *conn);
    if (conn == NULL)
        return ENOMEM;
    conn->fd = fd;
    conn->slot = slot;

    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0) {
        free(conn);
        return rc;
    }
    rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&attr, THREAD_STACK);
    pthread_t tid;
    if (rc == 0)
        rc = pthread_create(&tid, &attr, connection_thread, conn);
    check_pthread(pthread_attr_destroy(&attr), "pthread_attr_destroy");
    if (rc != 0)
        free(conn);
    return rc;
}

static void reject(int fd, const char *why)
{
    /* Best effort: the client is turned away either way. */
    (void)send_all(fd, why, strlen(why));
    close_socket(fd);
}

static void hand_off(int fd)
{
    size_t slot;
    if (!conn_register(fd, &slot)) {
        reject(fd, "ERROR too many connections\n");
        return;
    }
    int rc = start_thread(fd, slot);
    if (rc != 0) {
        fprintf(stderr, "kvstore: cannot start connection thread: %s\n", strerror(rc));
        conn_release(slot);
        reject(fd, "ERROR server busy\n");
        return;
    }
    connections_accepted++;
}

static void accept_one(int listen_fd)
{
    int fd;
    do {
        fd = accept(listen_fd, NULL, NULL);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int err = errno;
        /* The listener is non-blocking: a client that vanished before accept is no error. */
        if (err == EAGAIN || err == EWOULDBLOCK || err == ECONNABORTED)
            return;
        fprintf(stderr, "kvstore: accept: %s\n", strerror(err));
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
            /* Give connections time to close instead of spinning on the error. */
            struct timespec pause = {0, 50 * 1000 * 1000};
            while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
                continue;
        }
        return;
    }
    /* Connection threads use blocking I/O; some systems copy O_NONBLOCK from the listener. */
    if (set_flags(fd, 0, O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        perror("kvstore: fcntl");
        close_socket(fd);
        return;
    }
    hand_off(fd);
}

/* ---- Listening and shutdown -------------------------------------------------------- */

static int open_listener(unsigned port, unsigned *bound_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("kvstore: socket");
        return -1;
    }
    int one = 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t addr_len = sizeof addr;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        perror("kvstore: setsockopt(SO_REUSEADDR)");
    } else if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("kvstore: bind");
    } else if (listen(fd, LISTEN_BACKLOG) != 0) {
        perror("kvstore: listen");
    } else if (getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
        perror("kvstore: getsockname");
    } else if (set_flags(fd, O_NONBLOCK, 0) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        perror("kvstore: fcntl");
    } else {
        *bound_port = ntohs(addr.sin_port);
        return fd;
    }
    close_socket(fd);
    return -1;
}

/* Serves until a stop is requested; returns 0, or -1 if polling itself failed. */
static int accept_loop(int listen_fd)
{
    while (!atomic_load(&stop_requested)) {
        struct pollfd fds[2] = {
            {.fd = listen_fd, .events = POLLIN},
            {.fd = wake_pipe[0], .events = POLLIN},
        };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("kvstore: poll");
            return -1;
        }
        if (fds[0].revents & (POLLIN | POLLERR | POLLHUP))
            accept_one(listen_fd);
    }
    return 0;
}

/* Wakes every connection thread and waits, for a bounded time, until they are gone. */
static bool close_connections(void)
{
    struct timespec deadline;
    if (clock_gettime(CLOCK_REALTIME, &deadline) != 0) {
        perror("kvstore: clock_gettime");
        return false;
    }
    deadline.tv_sec += SHUTDOWN_GRACE_S;

    check_pthread(pthread_mutex_lock(&conn_lock), "pthread_mutex_lock");
    conn_closing = true;
    for (size_t i = 0; i < conn_cap; i++) {
        /* ENOTCONN only means the peer already left; the thread is finishing anyway. */
        if (conn_fds[i] >= 0 && shutdown(conn_fds[i], SHUT_RDWR) != 0 && errno != ENOTCONN)
            perror("kvstore: shutdown");
    }
    int rc = 0;
    while (conn_active > 0 && rc == 0)
        rc = pthread_cond_timedwait(&conn_idle, &conn_lock, &deadline);
    bool idle = conn_active == 0;
    check_pthread(pthread_mutex_unlock(&conn_lock), "pthread_mutex_unlock");
    if (rc != 0 && rc != ETIMEDOUT)
        check_pthread(rc, "pthread_cond_timedwait");
    return idle;
}

static int print_final_stats(void)
{
    char counters[256];
    if (stats_format(counters, sizeof counters) < 0)
        strcpy(counters, "unavailable");
    if (printf("kvstore stats: connections=%llu requests=%llu %s\n", connections_accepted,
               (unsigned long long)atomic_load(&requests_served), counters) < 0 ||
        fflush(stdout) != 0) {
        perror("kvstore: stdout");
        return -1;
    }
    return 0;
}

static int init_connection_table(unsigned max_conns)
{
    conn_fds = malloc(max_conns * sizeof *conn_fds);
    if (conn_fds == NULL) {
        fprintf(stderr, "kvstore: out of memory for the connection table\n");
        return -1;
    }
    for (size_t i = 0; i < max_conns; i++)
        conn_fds[i] = -1;
    conn_cap = max_conns;
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    if (parse_options(argc, argv, &opt) != 0) {
        usage(stderr);
        return 2;
    }
    requests_limit = opt.requests_limit;
    if (setup_signals() != 0 || init_connection_table(opt.max_conns) != 0)
        return 1;

    unsigned port;
    int listen_fd = open_listener(opt.port, &port);
    if (listen_fd < 0)
        return 1;
    if (printf("kvstore listening on 127.0.0.1:%u\n", port) < 0 || fflush(stdout) != 0) {
        perror("kvstore: stdout");
        return 1;
    }

    int status = accept_loop(listen_fd) == 0 ? 0 : 1;
    close_socket(listen_fd);
    if (!close_connections())
        fprintf(stderr, "kvstore: connections still busy after %d s; exiting anyway\n",
                SHUTDOWN_GRACE_S);
    if (print_final_stats() != 0)
        status = 1;
    return status;
}
