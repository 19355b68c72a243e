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

/* Marks a dead domain's channels so that every thread waiting on one returns at once. */
static void mark_dead(int d)
{
    struct qrt__domain *dom = qrt__domain(d);
    atomic_store(&dom->dead, 1);
    for (unsigned i = 0; i < QRT_CHANNELS; i++) {
        atomic_store(&dom->region->chan[i].state, QRT_DEAD);
        qrt__wake_all(&dom->region->chan[i].state);
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
            if (!atomic_load(&dom->dead) && dom->pidfd >= 0) {
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
            if (fds[i].revents) {
                struct qrt__domain *dom = qrt__domain(map[i]);
                int status;
                while (waitpid(dom->pid, &status, 0) < 0 && errno == EINTR)
                    ;
                fprintf(stderr, "%s: quarantine: domain %s (pid %d) ended: %s %d\n", program->name,
                        program->domains[map[i]], (int)dom->pid,
                        WIFSIGNALED(status) ? "signal" : "exit status",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                mark_dead(map[i]);
            }
        }
    }
}

static int spawn(int d, const char *exe)
{
    struct qrt__domain *dom = qrt__domain(d);
    char name[64];
    snprintf(name, sizeof name, "qrt-%s", program->domains[d]);
    int fd = memfd_create(name, 0);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, sizeof(struct qrt__region)) < 0 || !(dom->region = map_region(fd))) {
        int e = -errno;
        close(fd);
        return e;
    }
    for (unsigned i = 0; i < QRT_CHANNELS; i++)
        dom->region->chan[i].domain = (uint32_t)d;

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
        execve(path, argv, envp);
        int e = errno;
        ssize_t unused = write(errpipe[1], &e, sizeof e);
        (void)unused;
        _exit(127);
    }
    free(envp);
    close(errpipe[1]);
    close(fd);      /* the child has its own descriptor now; the mapping stays */
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
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return -errno;
    exe[n] = '\0';
    for (int d = 1; d < p->ndomains; d++) {
        int rc = spawn(d, exe);
        if (rc == 0)
            rc = await_ready(d);
        if (rc < 0) {
            fprintf(stderr, "%s: quarantine: domain %s did not start: %s\n", p->name, p->domains[d],
                    strerror(-rc));
            return rc;
        }
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, supervise, NULL);
    pthread_attr_destroy(&attr);
    return -rc;
}

static void *serve_thread(void *arg)
{
    qrt__serve(arg);
    return NULL;
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
    run_inits(p);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (unsigned i = 0; i < QRT_CHANNELS; i++) {
        pthread_t t;
        int rc = pthread_create(&t, &attr, serve_thread, &region->chan[i]);
        if (rc != 0) {
            fprintf(stderr, "quarantine: starting a server thread: %s\n", strerror(rc));
            return 1;
        }
    }
    pthread_attr_destroy(&attr);
    atomic_store(&region->ready, 1);
    qrt__wake_all(&region->ready);
    for (;;)
        pause();    /* the server threads do the work; the kernel ends us with main */
}
