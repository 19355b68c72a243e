/*
 * process.c - starting domain processes, watching them, and a domain's own main().
 *
 * Each domain gets an anonymous shared-memory file (memfd): it has no name, so nothing outlives
 * the processes that map it.  The child asks the kernel to kill it when its parent dies
 * (PR_SET_PDEATHSIG), so even `kill -9` of the main process leaves no orphan.  An exec failure
 * comes back through a close-on-exec pipe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stddef.h>
#include <execinfo.h>
#include <link.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qrt_internal.h"

extern char **environ;

static const struct qrt_program *program;

static ssize_t read_retry(int fd, void *buf, size_t n)
{
    ssize_t r;
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
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

static char exe_path[PATH_MAX];

/* Marks a dead domain's channels so that every thread waiting on one returns at once. */
static void mark_dead(int d)
{
    struct qrt__domain *dom = qrt__domain(d);
    atomic_store(&dom->dead, 1);
    atomic_fetch_add(&dom->generation, 1);
    for (unsigned i = 0; i < QRT_CHANNELS; i++) {
        atomic_store(&dom->region->chan[i].state, QRT_DEAD);
        qrt__wake_all(&dom->region->chan[i].state);
    }
}

void qrt__watchdog_fire(int d, uint32_t generation, uint32_t function)
{
    qrt__kill_domain(d, generation, function, -ETIMEDOUT);
}

/* Kills the domain's current process (once per generation) for a reason the report will give:
 * a hang (-ETIMEDOUT) or a malformed message. */
void qrt__kill_domain(int d, uint32_t generation, uint32_t function, int why)
{
    struct qrt__domain *dom = qrt__domain(d);
    int expected = 0;
    if (atomic_load(&dom->generation) == generation &&
        atomic_compare_exchange_strong(&dom->hung, &expected, why == -ETIMEDOUT ? 1 : 2)) {
        dom->hung_function = function;
        kill(dom->pid, SIGKILL);
    }
}

static int spawn(int d, const char *exe);
static int await_ready(int d);

static _Atomic uint32_t reports_pending;

/* Whether one more restart of d stays within max_restarts per window; records it if so. */
static int may_restart(int d, long long now)
{
    struct qrt__domain *dom = qrt__domain(d);
    const struct qrt_policy *pol = &program->policies[d];
    unsigned recent = 0, n = dom->nrestarts < 64 ? dom->nrestarts : 64;
    for (unsigned i = 0; i < n; i++)
        if (now - dom->restarts[i] < pol->window_ms)
            recent++;
    if ((int)recent >= pol->max_restarts)
        return 0;
    dom->restarts[dom->nrestarts++ % 64] = now;
    return 1;
}

/* Ends the program as the domain ended: with its signal (SIGKILL for a hang). */
static void escalate(int status, int hung)
{
    int sig = hung ? SIGKILL : WIFSIGNALED(status) ? WTERMSIG(status) : SIGABRT;
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);     /* directed at this thread, so it is delivered before raise returns */
    _exit(128 + sig);
}

/* A domain died: contain it.  Callers in flight are released at once (their channels are marked
 * dead), then the plan decides: restart the domain, re-running its QPM_INIT functions, or end the
 * program; a report is written either way, by this process, which did not crash. */
static void handle_death(int d, int status)
{
    struct qrt__domain *dom = qrt__domain(d);
    long long start = qrt__stats_clock();     /* ns */
    struct qrt__crash crash;
    memcpy(&crash, &dom->region->crash, sizeof crash);
    int hung = atomic_load(&dom->hung);
    if (hung) {
        /* A killed domain recorded nothing; the caller whose deadline passed knows the call. */
        memset(&crash, 0, sizeof crash);
        crash.function = dom->hung_function;
        atomic_store(&crash.written, 2);
    }
    mark_dead(d);
    const struct qrt_policy *pol = &program->policies[d];
    if (pol->on_fault == QRT_ON_FAULT_ABORT || !may_restart(d, qrt__now_ms())) {
        const char *why = pol->on_fault == QRT_ON_FAULT_ABORT ? "abort" : "abort: max_restarts exceeded";
        qrt__write_crash_report(program, d, status, hung, &crash, -1, why);
        escalate(status, hung);
    }
    /* Reset the region for the new process: nothing of the old one's state is kept. */
    memset(&dom->region->crash, 0, sizeof dom->region->crash);
    atomic_store(&dom->region->ready, 0);
    for (unsigned i = 0; i < QRT_CHANNELS; i++) {
        atomic_store(&dom->region->chan[i].sleepers, 0);
        atomic_store(&dom->region->chan[i].state, QRT_IDLE);
    }
    atomic_store(&dom->hung, 0);
    if (dom->pidfd >= 0)
        close(dom->pidfd);
    dom->pidfd = -1;
    int rc = spawn(d, exe_path);
    if (rc == 0)
        rc = await_ready(d);
    if (rc < 0) {
        fprintf(stderr, "%s: quarantine: domain %s could not be restarted: %s\n", program->name,
                program->domains[d], strerror(-rc));
        qrt__write_crash_report(program, d, status, hung, &crash, -1, "abort: restart failed");
        escalate(status, hung);
    }
    long long recovered = qrt__stats_clock() - start;     /* ns: from the death seen to serving */
    /* Counted before the callers go on, so that the program cannot exit under the report. */
    atomic_fetch_add(&reports_pending, 1);
    atomic_store(&dom->dead, 0);
    atomic_store(&dom->ready_generation, atomic_load(&dom->generation));
    qrt__wake_all(&dom->ready_generation);
    qrt__write_crash_report(program, d, status, hung, &crash, recovered, "restarted");
    atomic_fetch_sub(&reports_pending, 1);
    qrt__wake_all((_Atomic uint32_t *)&reports_pending);
}

/* At exit, the reports being written are finished first (for a few seconds at most). */
static void finish_reports(void)
{
    long long until = qrt__now_ms() + 5000;
    for (uint32_t n; (n = atomic_load(&reports_pending)) && qrt__now_ms() < until;) {
        struct timespec t = {0, 50000000};
        syscall(SYS_futex, (uint32_t *)&reports_pending, FUTEX_WAIT, n, &t, NULL, 0);
    }
}

/* Watches every domain's pidfd and reacts to a death the moment it happens. */
static void *supervise(void *arg)
{
    (void)arg;
    struct pollfd fds[QRT_MAX_DOMAINS];
    int map[QRT_MAX_DOMAINS];
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
        if (n == 0)
            return NULL;
        int r = poll(fds, (nfds_t)n, -1);
        if (r < 0 && errno != EINTR)
            return NULL;
        for (int i = 0; i < n; i++) {
            if (!fds[i].revents)
                continue;
            struct qrt__domain *dom = qrt__domain(map[i]);
            int status = 0;
            while (waitpid(dom->pid, &status, 0) < 0 && errno == EINTR)
                ;
            handle_death(map[i], status);
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
    if (ftruncate(fd, sizeof(struct qrt__region)) < 0 || !(dom->region = map_region(fd))) {
        int e = -errno;
        close(fd);
        return e;
    }
    for (unsigned i = 0; i < QRT_CHANNELS; i++)
        dom->region->chan[i].domain = (uint32_t)d;
    dom->memfd = fd;
    dom->pidfd = -1;
    return 0;
}

static int spawn(int d, const char *exe)
{
    struct qrt__domain *dom = qrt__domain(d);
    int fd = dom->memfd;
    char path[PATH_MAX + 64], fd_env[32], dom_env[32];
    snprintf(path, sizeof path, "%s-%s", exe, program->domains[d]);
    snprintf(fd_env, sizeof fd_env, "QRT_SHM_FD=%d", fd);
    snprintf(dom_env, sizeof dom_env, "QRT_DOMAIN=%d", d);
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 3, sizeof *envp);
    if (!envp)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "QRT_", 4) != 0)
            envp[k++] = environ[i];
    envp[k++] = fd_env;
    envp[k++] = dom_env;
    char *argv[] = {path, NULL};

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        free(envp);
        return -errno;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        free(envp);
        close(errpipe[0]);
        close(errpipe[1]);
        return e;
    }
    if (pid == 0) {
        /* Die with the main process, even when it is killed with SIGKILL. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        fcntl(fd, F_SETFD, 0);      /* the region is the one descriptor the domain inherits */
        execve(path, argv, envp);
        int e = errno;
        ssize_t unused = write(errpipe[1], &e, sizeof e);
        (void)unused;
        _exit(127);
    }
    free(envp);
    close(errpipe[1]);
    int child_errno = 0;
    ssize_t r = read_retry(errpipe[0], &child_errno, sizeof child_errno);
    close(errpipe[0]);
    if (r == (ssize_t)sizeof child_errno) {
        fprintf(stderr, "%s: quarantine: cannot start domain %s: %s: %s\n", program->name,
                program->domains[d], path, strerror(child_errno));
        waitpid(pid, NULL, 0);
        return -child_errno;
    }
    dom->pid = pid;
    dom->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    return 0;
}

/* Waits until domain d serves, or fails: it died or took too long. */
static int await_ready(int d)
{
    struct qrt__domain *dom = qrt__domain(d);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!atomic_load(&dom->region->ready)) {
        int status;
        if (waitpid(dom->pid, &status, WNOHANG) == dom->pid)
            return -ECHILD;
        struct timespec now, t = {0, 10000000};
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > QRT_START_TIMEOUT_S)
            return -ETIMEDOUT;
        syscall(SYS_futex, (uint32_t *)&dom->region->ready, FUTEX_WAIT, 0, &t, NULL, 0);
    }
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
    for (int d = 1; d < p->ndomains; d++) {
        int rc = make_region(d);
        if (rc == 0)
            rc = spawn(d, exe_path);
        if (rc == 0)
            rc = await_ready(d);
        if (rc < 0) {
            fprintf(stderr, "%s: quarantine: domain %s did not start: %s\n", p->name, p->domains[d],
                    strerror(-rc));
            return rc;
        }
    }
    atexit(finish_reports);
    qrt__stats_start(p);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, supervise, NULL);
    pthread_attr_destroy(&attr);
    return -rc;
}

/* Crash capture, in a domain.  The handler only records (async-signal-safe, on an alternate
 * stack so that a stack overflow can be recorded too) and then dies of the same signal; the main
 * process writes the report. */
static struct qrt__region *own_region;
static uint64_t load_bias;

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(uint64_t *)data = (uint64_t)info->dlpi_addr;
    return 1;       /* the first object is the executable itself */
}

static void on_crash(int sig)
{
    struct qrt__crash *c = &own_region->crash;
    uint32_t expected = 0;
    if (atomic_compare_exchange_strong(&c->written, &expected, 1)) {
        /* The first two frames are this handler and the kernel's signal trampoline. */
        void *frames[QRT_CRASH_FRAMES + 2];
        int n = backtrace(frames, QRT_CRASH_FRAMES + 2);
        int skip = n > 2 ? 2 : 0;
        for (int i = skip; i < n; i++)
            c->frames[i - skip] = (uint64_t)(uintptr_t)frames[i];
        c->nframes = (uint32_t)(n - skip);
        c->bias = load_bias;
        c->function = qrt__serving_fn;
        c->signal = sig;
        atomic_store(&c->written, 2);
    }
    raise(sig);     /* the handler was reset: this ends the process with sig */
}

static void install_crash_handlers(struct qrt__region *region)
{
    own_region = region;
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

static void *serve_thread(void *arg)
{
    /* An alternate stack per thread: a thread that overflowed its stack can still be recorded. */
    stack_t ss;
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp)
        sigaltstack(&ss, NULL);
    qrt__serve(arg);
    return NULL;
}

/* Starts a serving thread for every claimed channel that has none yet. */
static int serve_claimed(struct qrt__region *region)
{
    static unsigned char started[QRT_CHANNELS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = 0;
    for (unsigned i = 0; i < QRT_CHANNELS && rc == 0; i++) {
        if (started[i] || !atomic_load(&region->chan[i].owner))
            continue;
        pthread_t t;
        rc = pthread_create(&t, &attr, serve_thread, &region->chan[i]);
        if (rc != 0)
            fprintf(stderr, "quarantine: starting a server thread: %s\n", strerror(rc));
        started[i] = 1;
    }
    pthread_attr_destroy(&attr);
    return -rc;
}

int qrt_domain_main(const struct qrt_program *p, int domain, int argc, char **argv)
{
    (void)argc;
    program = p;
    qrt__set_program(p, domain);
    const char *fd_text = getenv("QRT_SHM_FD");
    const char *dom_text = getenv("QRT_DOMAIN");
    if (!fd_text || !dom_text || atoi(dom_text) != domain) {
        fprintf(stderr, "%s: this is the %s domain of %s, started by that program, not by hand\n",
                argv[0], p->domains[domain], p->name);
        return 2;
    }
    struct qrt__region *region = map_region(atoi(fd_text));
    if (!region) {
        perror("quarantine: mapping the domain's channels");
        return 1;
    }
    qrt__domain(domain)->region = region;
    install_crash_handlers(region);
    run_inits(p);
    /* A serving thread per channel in use: the ones main's threads hold now are started before
     * the domain says it is ready (after a restart, that is every thread that had a call going),
     * the rest as main claims them.  Starting all 64 up front would triple the restart time. */
    if (serve_claimed(region) < 0)
        return 1;
    atomic_store(&region->ready, 1);
    qrt__wake_all(&region->ready);
    for (;;) {
        uint32_t seen = atomic_load(&region->claims);
        if (serve_claimed(region) < 0)
            return 1;
        syscall(SYS_futex, (uint32_t *)&region->claims, FUTEX_WAIT, seen, NULL, NULL, 0);
    }
}

/* The monolithic build: no domain, no channel, nothing on any call path.  A watcher process,
 * forked before main() runs, waits for the program to die; a crash handler in the program only
 * records its signal and return addresses in memory shared with the watcher, which writes the
 * report (the process that crashed is in no state to). */
static void watch_program(pid_t program_pid, struct qrt__region *region)
{
    prctl(PR_SET_NAME, "qpm-watcher");
    int pidfd = (int)syscall(SYS_pidfd_open, program_pid, 0);
    if (pidfd < 0)
        _exit(0);
    struct pollfd pfd = {pidfd, POLLIN, 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    /* Only a crash leaves a record; a normal exit leaves nothing to report. */
    if (atomic_load(&region->crash.written) == 2) {
        int sig = region->crash.signal;
        int status = sig > 0 && sig < 65 ? sig : SIGSEGV;   /* as waitpid would say: killed by sig */
        qrt__write_crash_report(program, 0, status, 0, &region->crash, -1, "program died");
    }
    _exit(0);
}

int qrt_mono_start(const struct qrt_program *p)
{
    program = p;
    run_inits(p);
    /* Only the region's head (its crash record) is used here. */
    struct qrt__region *region = mmap(NULL, offsetof(struct qrt__region, chan), PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* The watcher must outlive the program, so it leaves its process group's signals alone. */
        setsid();
        watch_program(parent, region);
    }
    install_crash_handlers(region);
    stack_t ss;     /* so that the main thread's stack overflow is recorded too */
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp)
        sigaltstack(&ss, NULL);
    return 0;
}