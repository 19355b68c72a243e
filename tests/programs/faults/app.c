/* app SCENARIO [ARG]: drives faulty and prints what came back, one result per line. */
#include "faulty.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int one(int x) { return x; }

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

/* A callback that main is still running when the domain that called it dies. */
static int cb_fd[2];
static volatile int in_callback;

static int slow_cb(int x)
{
    char c;
    if (!in_callback++) {
        /* The first time: wait until main's other thread has crashed the domain. */
        if (read(cb_fd[0], &c, 1) != 1)
            return -100;
    }
    return x * 10;
}

static void *callback_caller(void *arg)
{
    (void)arg;
    return (void *)(long)faulty_callback(slow_cb, 4);
}

static void *slow_caller(void *arg)
{
    (void)arg;
    return (void *)(long)(faulty_slow(200) == 200);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *s = argv[1];
    int before = faulty_pid();
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(s, "null"))
        printf("result %d\n", faulty_null(1));
    else if (!strcmp(s, "abort"))
        printf("result %d\n", faulty_abort());
    else if (!strcmp(s, "overflow"))
        printf("result %d\n", faulty_overflow(0));
    else if (!strcmp(s, "deadlock"))
        printf("result %d\n", faulty_deadlock());
    else if (!strcmp(s, "flaky"))
        printf("result %d\n", faulty_flaky(argv[2]));
    else if (!strcmp(s, "repeat")) {
        for (int i = 0; i < atoi(argv[2]); i++)
            printf("result %d\n", faulty_null(1));
    } else if (!strcmp(s, "fork")) {
        /* A child forked after the start: its calls across the boundary fail (they would be
         * answered to the wrong process); and the program's only children are its own. */
        pid_t child = fork();
        if (child == 0) {
            printf("child result %d\n", faulty_ok(1));
            _exit(0);
        }
        int status;
        printf("reaped %d\n", waitpid(child, &status, 0) == child);
        /* The crash watcher is no child of the program's; a split program's domains are, but
         * send no SIGCHLD, and no wait of the program's reaps them. */
        int other = waitpid(-1, &status, WNOHANG);
        printf("other children %s\n", other < 0 && errno == ECHILD ? "none" : other == 0 ? "running" : "reaped");
    } else if (!strcmp(s, "big")) {
        /* A reply larger than a message: a fault by the plan, not the end of main. */
        char *b = faulty_big(3);
        printf("big %s\n", b ? "string" : "null");
        free(b);
    } else if (!strcmp(s, "chatty")) {
        /* A call that keeps calling back past its deadline is a hang. */
        printf("result %d\n", faulty_chatty(one));
    } else if (!strcmp(s, "cbcrash")) {
        /* The domain dies while main runs a callback for another of its calls: that call is
         * innocent, and is issued again. */
        if (pipe(cb_fd) != 0)
            return 2;
        pthread_t t;
        pthread_create(&t, NULL, callback_caller, NULL);
        while (!in_callback)
            usleep(1000);
        printf("result %d\n", faulty_null(1));
        if (write(cb_fd[1], "x", 1) != 1)
            return 2;
        void *r;
        pthread_join(t, &r);
        printf("callback call %ld\n", (long)r);
    } else if (!strcmp(s, "groupterm")) {
        /* SIGTERM to the whole process group, as a service manager stops a server (run it in a
         * group of its own): main catches it and goes on; no component is to blame. */
        signal(SIGTERM, on_term);
        kill(0, SIGTERM);
        while (!stopping)
            usleep(1000);
        printf("stopping %d\n", (int)stopping);
    } else if (!strcmp(s, "threads")) {
        /* Calls in flight on other threads when the domain dies get the same treatment. */
        pthread_t t[6];
        for (int i = 0; i < 6; i++)
            pthread_create(&t[i], NULL, slow_caller, NULL);
        usleep(50000);
        printf("result %d\n", faulty_flaky(argv[2]));
        long ok = 0;
        for (int i = 0; i < 6; i++) {
            void *r;
            pthread_join(t[i], &r);
            ok += (long)r;
        }
        printf("slow calls ok %ld\n", ok);
    } else if (!strcmp(s, "closeall")) {
        /* A daemon closing every descriptor it inherited, as daemons do at start-up: its own are
         * closed, the runtime's stay, and a crash is still contained and reported. */
        int p[2];
        if (pipe(p) != 0)
            return 2;
        if (!strcmp(argv[2], "proc")) {
            DIR *d = opendir("/proc/self/fd");
            for (struct dirent *e; d && (e = readdir(d));)
                if (atoi(e->d_name) > 2 && atoi(e->d_name) != dirfd(d))
                    close(atoi(e->d_name));
            if (d)
                closedir(d);
        } else if (!strcmp(argv[2], "loop")) {
            for (long fd = 3; fd < sysconf(_SC_OPEN_MAX) && fd < 65536; fd++)
                close((int)fd);
        } else if (!strcmp(argv[2], "closefrom")) {
            closefrom(3);
        } else if (!strcmp(argv[2], "range")) {
            close_range(3, ~0u, 0);
        }
        printf("closed %d %d\n", fcntl(p[0], F_GETFD) < 0 && errno == EBADF, fcntl(p[1], F_GETFD) < 0);
        printf("result %d\n", faulty_null(1));
    } else {
        return 2;
    }
    printf("after %d\n", faulty_ok(1));
    printf("inits %d\n", faulty_inits());
    printf("restarted %d\n", faulty_pid() != before);
    return 0;
}
