/*
 * pingpong.c - the physical limits of a call between two processes on this machine, measured
 * by hand: a direct call, a spin ping-pong over shared memory, a futex ping-pong, an AF_UNIX
 * socketpair ping-pong, and a raw 4 KiB in + 8 KiB out transfer with spin hand-off.
 *
 *   pingpong MODE ROUNDS     prints "MODE ns_per_round_trip"
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
    _Atomic uint32_t turn;      /* 0: server's turn is over, 1: request posted, 2: reply posted */
    uint8_t in[4096];
    uint8_t out[8192];
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void futex(_Atomic uint32_t *w, int op, uint32_t v)
{
    syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

__attribute__((noinline)) int null_function(int x)
{
    __asm__ volatile("" ::: "memory");
    return x + 1;
}

static void wait_for(_Atomic uint32_t *w, uint32_t want, int use_futex)
{
    for (;;) {
        uint32_t v = atomic_load_explicit(w, memory_order_acquire);
        if (v == want)
            return;
        if (use_futex)
            futex(w, FUTEX_WAIT, v);
        else
            __builtin_ia32_pause();
    }
}

static void post(_Atomic uint32_t *w, uint32_t v, int use_futex)
{
    atomic_store_explicit(w, v, memory_order_release);
    if (use_futex)
        futex(w, FUTEX_WAKE, 1);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *mode = argv[1];
    long rounds = atol(argv[2]);
    double t0, t1;
    if (!strcmp(mode, "direct")) {
        int x = 0;
        t0 = now();
        for (long i = 0; i < rounds; i++)
            x = null_function(x);
        t1 = now();
        if (x != rounds)
            return 1;
    } else if (!strcmp(mode, "socketpair")) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            return 1;
        pid_t pid = fork();
        char b = 0;
        if (pid == 0) {
            for (long i = 0; i < rounds; i++)
                if (read(sv[1], &b, 1) != 1 || write(sv[1], &b, 1) != 1)
                    _exit(1);
            _exit(0);
        }
        t0 = now();
        for (long i = 0; i < rounds; i++)
            if (write(sv[0], &b, 1) != 1 || read(sv[0], &b, 1) != 1)
                return 1;
        t1 = now();
        waitpid(pid, NULL, 0);
    } else {
        int use_futex = !strcmp(mode, "futex");
        int bulk = !strcmp(mode, "bulk");
        struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED)
            return 1;
        static uint8_t private_in[4096], private_out[8192];
        pid_t pid = fork();
        if (pid == 0) {
            static uint8_t work_in[4096], work_out[8192];
            for (long i = 0; i < rounds; i++) {
                wait_for(&s->turn, 1, use_futex);
                if (bulk) {
                    memcpy(work_in, s->in, sizeof work_in);        /* copy in */
                    memset(work_out, work_in[0], sizeof work_out);
                    memcpy(s->out, work_out, sizeof work_out);     /* copy out */
                }
                post(&s->turn, 2, use_futex);
            }
            _exit(0);
        }
        t0 = now();
        for (long i = 0; i < rounds; i++) {
            if (bulk) {
                private_in[0] = (uint8_t)i;
                memcpy(s->in, private_in, sizeof private_in);
            }
            post(&s->turn, 1, use_futex);
            wait_for(&s->turn, 2, use_futex);
            if (bulk)
                memcpy(private_out, s->out, sizeof private_out);
        }
        t1 = now();
        waitpid(pid, NULL, 0);
        if (bulk && private_out[0] != (uint8_t)(rounds - 1))
            return 1;
    }
    printf("%s %.1f\n", mode, (t1 - t0) * 1e9 / rounds);
    return 0;
}
