/*
 * process.c - starting domain processes, watching them, and a domain's own main().
 *
 * Each domain gets an anonymous shared-memory file (memfd): it has no name, so nothing outlives
 * the processes that map it.  Domains are started by the supervisor thread, which lives as long
 * as the main process: the kernel kills a child whose parent *thread* ends (PR_SET_PDEATHSIG), so
 * even `kill -9` of the main process leaves no orphan, and no application thread's exit does.
 * A domain is started with clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) like posix_spawn, so a
 * large main process costs no page-table copy, and its pidfd comes with it: every signal and
 * every wait goes through that pidfd, so no PID can be reused under us.  It sends no SIGCHLD:
 * an application that reaps any child (waitpid(-1)) never reaps a domain.  The domain starts
 * with descriptors 0, 1 and 2, its region, and its end of a fresh socket pair that QPM_FD
 * descriptors travel over (transport.c) only.
 *
 * A watcher process, forked before main() (monolithic and split builds alike), waits on a pidfd
 * of the main process opened before the fork and writes the report when main crashes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <execinfo.h>
#include <link.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qrt_internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
/* Main asks a hung domain thread for its backtrace with this signal before killing the domain. */
#define QRT_DUMP_SIGNAL (SIGRTMIN + 6)

extern char **environ;

static const struct qrt_program *program;
static char exe_path[PATH_MAX];

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static void run_inits(const struct qrt_program *p)
{
    for (void (*const *f)(void) = p->inits; f && *f; f++)
        (*f)();
}

static struct qrt__region *map_region(int fd)
{
    void *p = mmap(NULL, sizeof(struct qrt__region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Marks a dead domain's channels so that every thread waiting on one looks again, and finds its
 * generation gone. */
static void mark_dead(int d)
{
    struct qrt__domain *dom = qrt__domain(d);
    pthread_mutex_lock(&dom->lock);
    atomic_store(&dom->dead, 1);
    atomic_fetch_add(&dom->generation, 1);
    atomic_store(&dom->nwanted, 0);
    pthread_mutex_unlock(&dom->lock);
    uint32_t n = atomic_load(&dom->nopen);
    for (uint32_t i = 0; i < n; i++) {
        atomic_store(&dom->region->chan[i].state, QRT_DEAD);
        qrt__wake_all(&dom->region->chan[i].state);
    }
    qrt__wake_all(&dom->released);
}

/* Kills the domain's current process (once per generation) for a reason the report will give:
 * a hang (-ETIMEDOUT) or a malformed message, on the call running on `channel`.  A hung thread
 * is asked for its backtrace first, and given QRT_DUMP_WAIT_MS to record it. */
void qrt__kill_domain(int d, uint32_t generation, uint32_t function, uint32_t channel, uint32_t seq, int why)
{
    struct qrt__domain *dom = qrt__domain(d);
    int expected = 0, dump = 0;
    pthread_mutex_lock(&dom->lock);
    if (atomic_load(&dom->generation) == generation && dom->pidfd >= 0 &&
        atomic_compare_exchange_strong(&dom->hung, &expected, why == -ETIMEDOUT ? 1 : why == -ELOOP ? 3 : 2)) {
        dom->hung_function = function;
        dom->hung_channel = channel;
        dom->hung_seq = seq;
        dom->killed_ns = qrt__stats_clock();
        if (why == -ETIMEDOUT && channel < QRT_MAX_CHANNELS) {
            atomic_store(&dom->region->dump, channel);
            dump = pidfd_signal(dom->pidfd, QRT_DUMP_SIGNAL) == 0;
        }
        if (!dump)
            pidfd_signal(dom->pidfd, SIGKILL);
    }
    pthread_mutex_unlock(&dom->lock);
    if (!dump)
        return;
    long long until = qrt__now_ms() + QRT_DUMP_WAIT_MS;
    for (uint32_t w; (w = atomic_load(&dom->region->crash.written)) != 2;) {
        long long left = until - qrt__now_ms();
        if (left <= 0)
            break;
        struct timespec t = {0, (left < 10 ? left : 10) * 1000000};
        futex(&dom->region->crash.written, FUTEX_WAIT, w, &t);
    }
    pthread_mutex_lock(&dom->lock);
    if (atomic_load(&dom->generation) == generation && dom->pidfd >= 0)
        pidfd_signal(dom->pidfd, SIGKILL);
    pthread_mutex_unlock(&dom->lock);
}

int qrt__blamed(int d, uint32_t generation, uint32_t channel, uint32_t seq)
{
    struct qrt__blame *b = &qrt__domain(d)->blame[generation % QRT_BLAME_RING];
    uint32_t culprit = atomic_load(&b->channel), culprit_seq = atomic_load(&b->seq);
    /* Forgotten (64 deaths later): nobody can be cleared, so every call is taken for a culprit. */
    if (atomic_load(&b->generation) != generation + 1 || culprit == QRT_BLAME_ALL)
        return 1;
    return culprit == channel && culprit_seq == seq;
}

static int spawn(int d);
static int spawn_with(int d, int sock);
static int await_ready(int d);

static _Atomic uint32_t reports_pending;

/* Whether one more restart of d stays within max_restarts per window; records it if so.  The
 * ring holds the last max_restarts restart times: one more is refused exactly when the oldest
 * of them is still inside the window. */
static int may_restart(int d, long long now)
{
    struct qrt__domain *dom = qrt__domain(d);
    const struct qrt_policy *pol = &program->policies[d];
    unsigned cap = pol->max_restarts > 0 ? (unsigned)pol->max_restarts : 0;
    if (cap == 0 || !dom->restarts)
        return 0;
    long long *slot = &dom->restarts[dom->nrestarts % cap];
    if (dom->nrestarts >= cap && now - *slot < pol->window_ms)
        return 0;
    *slot = now;
    dom->nrestarts++;
    return 1;
}

/* Ends the program as the domain ended: with its signal (SIGKILL for a hang). */
static void escalate(int status, int hung)
{
    int sig = hung ? SIGKILL : WIFSIGNALED(status) ? WTERMSIG(status) : SIGABRT;
    signal(sig, SIG_DFL);     /* the main process's own crash handler must not report this */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);     /* directed at this thread, so it is delivered before raise returns */
    _exit(128 + sig);
}

/* Who is to blame for a death: the channel of the call whose thread crashed or hung (the record
 * names it, with the call's number), or every call in flight when the thread that died served
 * none or the domain left no record. */
static uint32_t blame(const struct qrt__crash *crash, uint32_t nopen)
{
    if (atomic_load(&((struct qrt__crash *)crash)->written) == 2 && crash->channel < nopen)
        return crash->channel;
    return QRT_BLAME_ALL;
}

/* Starts domain d's process and waits until it serves: 0, or a negative errno. */
static int start_domain(int d)
{
    int rc = spawn(d);
    return rc < 0 ? rc : await_ready(d);
}

/* A domain died: contain it.  Callers in flight are released at once (their generation is gone),
 * then the plan decides: restart the domain, re-running its QPM_INIT functions, or end the
 * program; a report is written either way, by this process, which did not crash. */
static void handle_death(int d, int status)
{
    struct qrt__domain *dom = qrt__domain(d);
    long long start = qrt__stats_clock();     /* ns */
    struct qrt__crash crash;
    memcpy(&crash, &dom->region->crash, sizeof crash);
    int hung = atomic_load(&dom->hung);
    if (hung == 1 && atomic_load(&crash.written) == 2 && crash.signal != 0)
        hung = 0;       /* it crashed before the watchdog's kill: the crash is the fault */
    if (hung) {
        /* A killed domain recorded nothing but, for a hang, the hung thread's backtrace; the
         * caller whose deadline passed knows the call. */
        int dumped = hung == 1 && atomic_load(&crash.written) == 2 && crash.signal == 0;
        if (!dumped)
            memset(&crash, 0, sizeof crash);
        crash.function = dom->hung_function;
        crash.channel = dom->hung_channel;
        crash.seq = dom->hung_seq;
        atomic_store(&crash.written, 2);
    }
    /* When the fault happened: the dying thread's own clock reading (it shares CLOCK_MONOTONIC
     * with us, and a value that is not in the last few seconds is not believed), or when main
     * killed the domain. */
    long long fault_ns = hung ? dom->killed_ns : start;
    if (!hung && atomic_load(&crash.written) == 2 && crash.when_ns <= (uint64_t)start &&
        (uint64_t)start - crash.when_ns < 10000000000ull)
        fault_ns = (long long)crash.when_ns;
    if (fault_ns <= 0 || fault_ns > start)
        fault_ns = start;
    uint32_t nopen = atomic_load(&dom->nopen);
    uint32_t culprit = blame(&crash, nopen);
    if (culprit == QRT_BLAME_ALL && !hung)
        crash.function = UINT32_MAX;    /* no one call: the report says every call in flight */
    struct qrt__death death;
    memset(&death, 0, sizeof death);
    death.pid = dom->pid;
    death.blame_all = culprit == QRT_BLAME_ALL;
    death.detect_ns = start - fault_ns;
    for (uint32_t i = 0; i < nopen; i++) {
        if (!qrt__channel_in_call(d, i))
            continue;
        uint32_t fn = dom->slots[i].function;
        unsigned k = 0;
        while (k < death.nflight && death.flight[k] != fn)
            k++;
        if (k == death.nflight && k < QRT_CRASH_FRAMES)
            death.flight[death.nflight++] = fn;
        if (k < death.nflight)
            death.flight_calls[k]++;
    }
    struct qrt__blame *b = &dom->blame[atomic_load(&dom->generation) % QRT_BLAME_RING];
    atomic_store(&b->generation, 0);
    atomic_store(&b->channel, culprit);
    atomic_store(&b->seq, crash.seq);
    atomic_store(&b->generation, atomic_load(&dom->generation) + 1);
    mark_dead(d);
    const struct qrt_policy *pol = &program->policies[d];
    if (pol->on_fault == QRT_ON_FAULT_ABORT || !may_restart(d, qrt__now_ms())) {
        const char *why = pol->on_fault == QRT_ON_FAULT_ABORT ? "abort" : "abort: max_restarts exceeded";
        qrt__write_crash_report(program, d, status, hung, &crash, &death, -1, why);
        escalate(status, hung);
    }
    qrt__handles_forget(d);
    /* Reset the region for the new process: nothing of the old one's state is kept. */
    memset(&dom->region->crash, 0, sizeof dom->region->crash);
    atomic_store(&dom->region->ready, 0);
    atomic_store(&dom->region->wanted, 0);
    atomic_store(&dom->region->dump, QRT_NO_CHANNEL);
    /* Read again: a call that passed the dead check just before the death may have opened one. */
    nopen = atomic_load(&dom->nopen);
    for (uint32_t i = 0; i < nopen; i++) {
        atomic_store(&dom->region->chan[i].sleepers, 0);
        atomic_store(&dom->region->chan[i].state, QRT_IDLE);
    }
    pthread_mutex_lock(&dom->lock);
    if (dom->pidfd >= 0)
        qrt__close_own(dom->pidfd);
    dom->pidfd = -1;
    atomic_store(&dom->hung, 0);
    pthread_mutex_unlock(&dom->lock);
    int rc = start_domain(d);
    if (rc < 0) {
        fprintf(stderr, "%s: quarantine: domain %s could not be restarted: %s\n", program->name,
                program->domains[d], strerror(-rc));
        qrt__write_crash_report(program, d, status, hung, &crash, &death, -1, "abort: restart failed");
        escalate(status, hung);
    }
    long long recovered = qrt__stats_clock() - fault_ns;  /* ns: from the fault to serving again */
    /* Counted before the callers go on, so that the program cannot exit under the report. */
    atomic_fetch_add(&reports_pending, 1);
    atomic_store(&dom->dead, 0);
    atomic_store(&dom->ready_generation, atomic_load(&dom->generation));
    qrt__wake_all(&dom->ready_generation);
    qrt__write_crash_report(program, d, status, hung, &crash, &death, recovered, "restarted");
    atomic_fetch_sub(&reports_pending, 1);
    qrt__wake_all((_Atomic uint32_t *)&reports_pending);
}

/* At exit, the reports being written are finished first (for a few seconds at most). */
static void finish_reports(void)
{
    long long until = qrt__now_ms() + 5000;
    for (uint32_t n; (n = atomic_load(&reports_pending)) && qrt__now_ms() < until;) {
        struct timespec t = {0, 50000000};
        futex(&reports_pending, FUTEX_WAIT, n, &t);
    }
}

/* Reaps a domain through its pidfd: a wait status as waitpid would give it, or -1. */
static int reap(int pidfd)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do
        r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | __WALL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    if (info.si_code == CLD_EXITED)
        return (info.si_status & 0xff) << 8;
    return info.si_status & 0x7f;       /* killed or dumped: WIFSIGNALED, WTERMSIG = the signal */
}

/*
 * The main thread may end with pthread_exit while other threads go on; the process then ends when
 * the last of them does.  The runtime's own threads (named "qrt-...") must not keep it alive: once
 * the main thread is gone, the supervisor looks now and then whether any application thread is
 * left, and ends the process as the last one would have (exit(0)).
 */
static int wake_fd = -1;                /* an eventfd: wakes the supervisor */
static _Atomic int main_thread_gone;
static pthread_key_t main_key;

static void on_main_thread_exit(void *unused)
{
    (void)unused;
    atomic_store(&main_thread_gone, 1);
    uint64_t one = 1;
    ssize_t unused_rc = write(wake_fd, &one, sizeof one);
    (void)unused_rc;
}

static int application_threads_left(void)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return 1;
    int left = 0;
    for (struct dirent *e; !left && (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], stat[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (n <= 0)
            continue;
        stat[n] = '\0';
        char *open_paren = strchr(stat, '('), *close_paren = strrchr(stat, ')');
        if (!open_paren || !close_paren || close_paren[1] == '\0')
            continue;
        char state = close_paren[2];
        int ours = strncmp(open_paren + 1, "qrt-", 4) == 0;
        if (!ours && state != 'Z' && state != 'X')
            left = 1;
    }
    closedir(dir);
    return left;
}

/* Set by the supervisor once every domain was started the first time (or failed to). */
static _Atomic uint32_t started_word;
static int start_result;

static int start_domains(void)
{
    for (int d = 1; d < program->ndomains; d++) {
        int rc = start_domain(d);
        if (rc < 0) {
            fprintf(stderr, "%s: quarantine: domain %s did not start: %s\n", program->name,
                    program->domains[d], strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* Starts every domain, then watches their pidfds and reacts to a death the moment it happens. */
static void *supervise(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "qrt-supervise");
    start_result = start_domains();
    atomic_store(&started_word, 1);
    qrt__wake_all(&started_word);
    if (start_result < 0)
        return NULL;
    struct pollfd fds[QRT_MAX_DOMAINS + 1];
    int map[QRT_MAX_DOMAINS + 1];
    for (;;) {
        int n = 0;
        for (int d = 1; d < program->ndomains; d++) {
            struct qrt__domain *dom = qrt__domain(d);
            if (dom->pidfd >= 0) {
                fds[n].fd = dom->pidfd;
                fds[n].events = POLLIN;
                map[n++] = d;
            }
        }
        fds[n].fd = wake_fd;
        fds[n].events = POLLIN;
        map[n++] = 0;
        int gone = atomic_load(&main_thread_gone);
        int r = poll(fds, (nfds_t)n, gone ? 20 : -1);
        if (r < 0 && errno != EINTR)
            return NULL;
        if (gone && !application_threads_left())
            exit(0);
        for (int i = 0; i < n && r > 0; i++) {
            if (!fds[i].revents)
                continue;
            if (map[i] == 0) {
                uint64_t v;
                ssize_t unused = read(wake_fd, &v, sizeof v);
                (void)unused;
                continue;
            }
            struct qrt__domain *dom = qrt__domain(map[i]);
            handle_death(map[i], reap(dom->pidfd));
        }
    }
}

/* The domain's shared region: made once, kept across restarts. */
static int make_region(int d)
{
    struct qrt__domain *dom = qrt__domain(d);
    char name[64];
    snprintf(name, sizeof name, "qrt-%s", program->domains[d]);
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Sparse: only the pages of channels in use are ever touched. */
    if (ftruncate(fd, sizeof(struct qrt__region)) < 0 || !(dom->region = map_region(fd))) {
        int e = -errno;
        close(fd);
        return e;
    }
    dom->memfd = fd;
    qrt__own_fd(fd);
    dom->pidfd = -1;
    atomic_store(&dom->region->dump, QRT_NO_CHANNEL);
    if (posix_memalign((void **)&dom->slots, 64, QRT_MAX_CHANNELS * sizeof *dom->slots) != 0)
        return -ENOMEM;
    memset(dom->slots, 0, QRT_MAX_CHANNELS * sizeof *dom->slots);
    pthread_mutex_init(&dom->lock, NULL);
    qrt__fds_init(d);
    int cap = program->policies[d].max_restarts;
    dom->restarts = cap > 0 ? calloc((size_t)cap, sizeof *dom->restarts) : NULL;
    if (cap > 0 && !dom->restarts)
        return -ENOMEM;
    return 0;
}

/* What the cloned child needs, prepared before the clone: it may call no function that locks or
 * allocates, since it shares the memory of a process whose other threads go on running. */
struct spawn_args {
    const char *path;
    char **argv, **envp;
    int memfd;
    int sock, sock_at;          /* the domain's socket, and where it goes: after the memfd */
    pid_t parent;
    int maxfd;
    volatile int err;
};

static int spawn_child(void *arg)
{
    struct spawn_args *a = arg;
    /* Die with the main process, even when it is killed with SIGKILL. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->parent)
        _exit(127);
    /* Only 0, 1, 2, the region and the domain's socket cross the exec: none of the program's
     * sockets and files. */
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = 3; fd < a->maxfd; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(a->memfd, F_SETFD, 0);
    /* At one number every time, as the region is, so that a restarted domain holds what the
     * first one held. */
    if (a->sock == a->sock_at)
        fcntl(a->sock, F_SETFD, 0);
    else if (dup2(a->sock, a->sock_at) < 0) {
        a->err = errno;
        _exit(127);
    }
    /* Every signal is blocked (by the parent, around the clone); the domain unblocks them. */
    execve(a->path, a->argv, a->envp);
    a->err = errno ? errno : ENOEXEC;
    _exit(127);
}

/* Starts domain d's process with a fresh socket pair: its end goes with it, and main's end
 * takes the place of the one of the process before. */
static int spawn(int d)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int rc = spawn_with(d, sv[1]);
    close(sv[1]);
    if (rc < 0) {
        close(sv[0]);
        return rc;
    }
    return qrt__fds_attach(d, sv[0]);
}

/* Whether an environment entry is one of those that spawn_with sets for a domain. */
static int own_variable(const char *entry)
{
    static const char *const names[] = {"QRT_SHM_FD=", "QRT_DOMAIN=", "QRT_FD_SOCK="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0)
            return 1;
    return 0;
}

static int spawn_with(int d, int sock)
{
    struct qrt__domain *dom = qrt__domain(d);
    char path[PATH_MAX + 64], fd_env[32], dom_env[32], sock_env[32];
    snprintf(path, sizeof path, "%s-%s", exe_path, program->domains[d]);
    snprintf(fd_env, sizeof fd_env, "QRT_SHM_FD=%d", dom->memfd);
    snprintf(dom_env, sizeof dom_env, "QRT_DOMAIN=%d", d);
    snprintf(sock_env, sizeof sock_env, "QRT_FD_SOCK=%d", dom->memfd + 1);
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 4, sizeof *envp);
    if (!envp)
        return -ENOMEM;
    /* The domain inherits main's environment, its tuning knobs (QRT_SPINNERS, QRT_YIELD_ROUNDS,
     * QRT_SPIN_FLOOR) too, so that they tune a crossing's two sides; only the variables that
     * tell a domain where it is come from here, whatever main's environment says of them. */
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (!own_variable(environ[i]))
            envp[k++] = environ[i];
    envp[k++] = fd_env;
    envp[k++] = dom_env;
    envp[k++] = sock_env;
    char *argv[] = {path, NULL};
    struct rlimit rl = {1024, 1024};
    getrlimit(RLIMIT_NOFILE, &rl);
    struct spawn_args a = {path, argv, envp, dom->memfd, sock, dom->memfd + 1, getpid(),
                           rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536, 0};
    size_t stack_size = 64 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        free(envp);
        return -errno;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    /* No exit signal (the low byte is 0): the domain is no SIGCHLD child of the program's. */
    pid_t pid = clone(spawn_child, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | CLONE_PIDFD, &a,
                      &pidfd);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    free(envp);
    if (pid < 0)
        return -clone_errno;
    if (a.err) {
        fprintf(stderr, "%s: quarantine: cannot start domain %s: %s: %s\n", program->name,
                program->domains[d], path, strerror(a.err));
        reap(pidfd);
        close(pidfd);
        return -a.err;
    }
    qrt__own_fd(pidfd);
    pthread_mutex_lock(&dom->lock);
    dom->pid = pid;
    dom->pidfd = pidfd;
    pthread_mutex_unlock(&dom->lock);
    return 0;
}

/* Waits until domain d serves, or fails: it died or took too long. */
static int await_ready(int d)
{
    struct qrt__domain *dom = qrt__domain(d);
    long long until = qrt__now_ms() + QRT_START_TIMEOUT_S * 1000;
    while (!atomic_load(&dom->region->ready)) {
        struct pollfd pfd = {dom->pidfd, POLLIN, 0};
        if (poll(&pfd, 1, 0) > 0) {
            reap(dom->pidfd);
            return -ECHILD;
        }
        if (qrt__now_ms() > until)
            return -ETIMEDOUT;
        struct timespec t = {0, 10000000};
        futex(&dom->region->ready, FUTEX_WAIT, 0, &t);
    }
    return 0;
}

/* Crash capture.  The handler only records (async-signal-safe, on an alternate stack so that a
 * stack overflow can be recorded too) and then dies of the same signal; another process writes
 * the report: main for a domain, the watcher for main. */
static struct qrt__crash *own_crash;
static uint64_t load_bias;
static _Atomic pid_t *serving_tids;             /* in a domain: the thread serving each channel */

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(uint64_t *)data = (uint64_t)info->dlpi_addr;
    return 1;       /* the first object is the executable itself */
}

/* Records this thread's backtrace, once per process; signal 0 means "asked for, not a crash". */
__attribute__((noinline)) static void record(int sig)
{
    struct qrt__crash *c = own_crash;
    uint32_t expected = 0;
    if (!atomic_compare_exchange_strong(&c->written, &expected, 1))
        return;
    /* The first two frames are the handler's (record and its caller); the kernel's signal
     * trampoline follows. */
    void *frames[QRT_CRASH_FRAMES + 3];
    int n = backtrace(frames, QRT_CRASH_FRAMES + 3);
    int skip = n > 3 ? 3 : 0;
    for (int i = skip; i < n; i++)
        c->frames[i - skip] = (uint64_t)(uintptr_t)frames[i];
    c->nframes = (uint32_t)(n - skip);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    c->when_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    c->bias = load_bias;
    c->function = qrt__serving_fn;
    c->channel = qrt__serving_channel;
    c->seq = qrt__serving_seq;
    c->signal = sig;
    atomic_store(&c->written, 2);
    qrt__wake_all(&c->written);
}

static void on_crash(int sig)
{
    record(sig);
    raise(sig);     /* the handler was reset: this ends the process with sig */
}

/* Main asked for the backtrace of the thread serving one channel (it hung): that thread records
 * it; any other thread that gets the signal passes it on to that one. */
static void on_dump(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    if (!own_crash || (info->si_pid != qrt__main_pid && info->si_pid != getpid()))
        return;
    struct qrt__region *region = (struct qrt__region *)((char *)own_crash - offsetof(struct qrt__region, crash));
    uint32_t want = atomic_load(&region->dump);
    if (want >= QRT_MAX_CHANNELS)
        return;
    if (qrt__serving_channel == want) {
        int saved = errno;
        record(0);
        errno = saved;
        return;
    }
    pid_t tid = serving_tids ? atomic_load(&serving_tids[want]) : 0;
    if (info->si_pid == qrt__main_pid && tid > 0)
        syscall(SYS_tgkill, getpid(), tid, sig);
}

static void install_crash_handlers(struct qrt__crash *crash)
{
    own_crash = crash;
    dl_iterate_phdr(first_object, &load_bias);
    void *warm[1];
    backtrace(warm, 1);     /* loads the unwinder now, not inside a signal handler */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* An alternate signal stack for this thread: a thread that overflowed its stack can still be
 * recorded. */
#define QRT_ALTSTACK (64 * 1024)
static __thread void *altstack;

static void alternate_stack(void)
{
    stack_t ss;
    ss.ss_size = QRT_ALTSTACK;
    ss.ss_sp = altstack = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp)
        sigaltstack(&ss, NULL);
}

/* The watcher: a process that outlives the program's main process just long enough to report its
 * crash.  It waits on a pidfd opened before the fork (so even a crash in the first microseconds
 * is seen) and holds none of the program's descriptors but that one and stderr. */
static void watch_program(int pidfd, pid_t program_pid, struct qrt__crash *crash)
{
    prctl(PR_SET_NAME, "qpm-watcher");
    /* The watcher must outlive the program, so it leaves its process group's signals alone: a
     * process group of its own, in the program's session.  Not a session of its own (setsid):
     * where the scheduler groups tasks by session (autogroup, on by default on many systems),
     * one more session of a sleeping process made the program itself slower by a fifth
     * (docs/PERFORMANCE.md, "The watcher's session").  A process group that is not the
     * terminal's foreground one may write to the terminal only if it ignores SIGTTOU. */
    setpgid(0, 0);
    signal(SIGTTOU, SIG_IGN);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
    }
    if (pidfd > 3)
        close_range(3, (unsigned)pidfd - 1, 0);
    close_range((unsigned)pidfd + 1, ~0u, 0);
    struct pollfd pfd = {pidfd, POLLIN, 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    /* Only a crash leaves a record; a normal exit (or an escalation, reported already) none. */
    if (atomic_load(&crash->written) == 2 && crash->signal != 0) {
        int sig = crash->signal;
        int status = sig > 0 && sig < 65 ? sig : SIGSEGV;   /* as waitpid would say: killed by sig */
        crash->function = UINT32_MAX;       /* main serves calls, but its crash is its own */
        crash->channel = QRT_NO_CHANNEL;
        struct qrt__death death;
        memset(&death, 0, sizeof death);
        death.pid = program_pid;
        qrt__write_crash_report(program, 0, status, 0, crash, &death, -1, "program died");
    }
    _exit(0);
}

/* Starts the watcher and the main process's crash capture: both builds, before main(). */
static int watch_main(void)
{
    struct qrt__crash *crash = mmap(NULL, sizeof *crash, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (crash == MAP_FAILED)
        return -errno;
    crash->channel = QRT_NO_CHANNEL;
    crash->function = UINT32_MAX;
    pid_t self = getpid();
    int pidfd = (int)syscall(SYS_pidfd_open, self, 0);
    if (pidfd < 0)
        return -errno;
    /* Forked twice, so that the watcher is no child of the program: a program that waits for
     * all its children (while (wait(&st) > 0)) must not find one more than its own. */
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(pidfd);
        return e;
    }
    if (pid == 0) {
        if (fork() == 0)
            watch_program(pidfd, self, crash);
        _exit(0);
    }
    close(pidfd);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    install_crash_handlers(crash);
    /* So that the main thread's stack overflow is recorded too. */
    static char main_altstack[QRT_ALTSTACK];
    stack_t ss = {.ss_sp = main_altstack, .ss_size = sizeof main_altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    return 0;
}

int qrt_start(const struct qrt_program *p)
{
    program = p;
    qrt__set_program(p, QRT_MAIN_DOMAIN);
    run_inits(p);
    if (p->ndomains > QRT_MAX_DOMAINS)
        return -E2BIG;
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    if (n < 0)
        return -errno;
    exe_path[n] = '\0';
    int rc = watch_main();
    for (int d = 1; rc == 0 && d < p->ndomains; d++)
        rc = make_region(d);
    if (rc < 0) {
        fprintf(stderr, "%s: quarantine: cannot set up the domains: %s\n", p->name, strerror(-rc));
        return rc;
    }
    qrt__channels_init();
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    qrt__own_fd(wake_fd);
    if (wake_fd < 0 || pthread_key_create(&main_key, on_main_thread_exit) != 0)
        return -EAGAIN;
    pthread_setspecific(main_key, (void *)1);
    atexit(finish_reports);
    qrt__stats_start(p);
    /* The supervisor starts the domains: they die with it, and it lives as long as the process. */
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, supervise, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -rc;
    while (!atomic_load(&started_word))
        futex(&started_word, FUTEX_WAIT, 0, NULL);
    return start_result;
}

/* In a domain: one serving thread per channel main opened, started when main first uses it. */
static struct qrt__region *own_region;

static void *serve_thread(void *arg)
{
    uint32_t i = (uint32_t)(uintptr_t)arg;
    atomic_store(&serving_tids[i], (pid_t)syscall(SYS_gettid));
    alternate_stack();
    qrt__serve(&own_region->chan[i]);
    return NULL;
}

int qrt_domain_main(const struct qrt_program *p, int domain, int argc, char **argv)
{
    (void)argc;
    program = p;
    qrt__set_program(p, domain);
    /* Signals that stop a program are for the main process: a service manager's SIGTERM to the
     * process group, the terminal's SIGINT or SIGHUP.  A domain outlives them until main ends
     * (then PR_SET_PDEATHSIG ends it), so a server stopping is no fault of a component.  SIGPIPE
     * too: a write to a peer that closed fails with EPIPE, as in the servers that ignore it in
     * main(), which a domain never runs. */
    static const int for_main[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < sizeof for_main / sizeof for_main[0]; i++)
        signal(for_main[i], SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);      /* main blocked every signal around the start */
    const char *fd_text = getenv("QRT_SHM_FD");
    const char *dom_text = getenv("QRT_DOMAIN");
    const char *sock_text = getenv("QRT_FD_SOCK");
    if (!fd_text || !dom_text || !sock_text || atoi(dom_text) != domain) {
        fprintf(stderr, "%s: this is the %s domain of %s, started by that program, not by hand\n",
                argv[0], p->domains[domain], p->name);
        return 2;
    }
    qrt__main_pid = getppid();
    qrt__own_fd(atoi(fd_text));
    struct qrt__region *region = map_region(atoi(fd_text));
    serving_tids = calloc(QRT_MAX_CHANNELS, sizeof *serving_tids);
    unsigned char *started = calloc(QRT_MAX_CHANNELS, 1);
    if (!region || !serving_tids || !started) {
        perror("quarantine: mapping the domain's channels");
        return 1;
    }
    own_region = region;
    qrt__domain(domain)->region = region;
    qrt__fds_init(domain);
    qrt__fds_attach(domain, atoi(sock_text));
    install_crash_handlers(&region->crash);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_dump;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(QRT_DUMP_SIGNAL, &sa, NULL);
    run_inits(p);
    atomic_store(&region->ready, 1);
    qrt__wake_all(&region->ready);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (uint32_t consumed = 0;;) {
        uint32_t seen = atomic_load(&region->wanted);
        if (seen - consumed > QRT_MAX_CHANNELS)
            consumed = seen - QRT_MAX_CHANNELS;
        for (; consumed != seen; consumed++) {
            uint32_t i = region->want[consumed % QRT_MAX_CHANNELS];
            if (i >= QRT_MAX_CHANNELS || started[i])
                continue;
            pthread_t t;
            int rc = pthread_create(&t, &attr, serve_thread, (void *)(uintptr_t)i);
            if (rc != 0) {
                fprintf(stderr, "quarantine: starting a server thread: %s\n", strerror(rc));
                return 1;
            }
            started[i] = 1;
        }
        futex(&region->wanted, FUTEX_WAIT, seen, NULL);
    }
}

/* The monolithic build: no domain, no channel, nothing on any call path; only the watcher. */
int qrt_mono_start(const struct qrt_program *p)
{
    program = p;
    run_inits(p);
    return watch_main();
}

/*
 * The runtime's own descriptors (in the main process: each domain's region, pidfd and descriptor
 * socket, and the supervisor's wake-up; in a domain: its region and socket) are kept from the
 * program.  A daemon that closes every descriptor it inherited (a loop over /proc/self/fd or up to
 * sysconf(_SC_OPEN_MAX), closefrom(3), close_range) would close them too, and its domains would
 * stop answering.  The program's calls of close, close_range and closefrom come here (an
 * executable's own definitions take the place of libc's): the runtime's descriptors stay open, and
 * close says EBADF, as for any number the program has not opened.  A process forked from the
 * program holds none of them as the runtime's: it may close them.
 */
#define QRT_OWN_FDS 65536
static _Atomic uint64_t own_fds[QRT_OWN_FDS / 64];

void qrt__own_fd(int fd)
{
    if (fd >= 0 && fd < QRT_OWN_FDS)
        atomic_fetch_or(&own_fds[fd / 64], 1ull << (fd % 64));
}

void qrt__close_own(int fd)
{
    if (fd >= 0 && fd < QRT_OWN_FDS)
        atomic_fetch_and(&own_fds[fd / 64], ~(1ull << (fd % 64)));
    syscall(SYS_close, fd);
}

void qrt__disown_fds(void)
{
    for (size_t i = 0; i < QRT_OWN_FDS / 64; i++)
        atomic_store_explicit(&own_fds[i], 0, memory_order_relaxed);
}

static int owned_fd(unsigned fd)
{
    return fd < QRT_OWN_FDS &&
           (atomic_load_explicit(&own_fds[fd / 64], memory_order_relaxed) >> (fd % 64)) & 1;
}

int close(int fd)
{
    if (fd >= 0 && owned_fd((unsigned)fd)) {
        errno = EBADF;
        return -1;
    }
    return (int)syscall(SYS_close, fd);
}

/* The range, less the runtime's descriptors in it: the kernel's close_range on each gap. */
int close_range(unsigned first, unsigned last, int flags)
{
    unsigned from = first;
    for (unsigned w = first / 64; w < QRT_OWN_FDS / 64 && w * 64ull <= last; w++) {
        uint64_t bits = atomic_load_explicit(&own_fds[w], memory_order_relaxed);
        while (bits) {
            unsigned fd = w * 64 + (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            if (fd < from || fd > last)
                continue;
            if (fd > from && syscall(SYS_close_range, from, fd - 1, flags) < 0)
                return -1;
            from = fd + 1;
        }
    }
    if (from < first || from > last)    /* past the end (or wrapped): nothing left */
        return 0;
    return (int)syscall(SYS_close_range, from, last, flags);
}

void closefrom(int lowfd)
{
    if (lowfd < 0)
        lowfd = 0;
    if (close_range((unsigned)lowfd, ~0u, 0) == 0)
        return;
    /* A kernel without close_range: every descriptor open, one by one. */
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return;
    for (struct dirent *e; (e = readdir(dir));) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= lowfd && fd != dirfd(dir))
            close(fd);
    }
    closedir(dir);
}
