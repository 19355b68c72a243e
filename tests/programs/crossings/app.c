#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int generation;

/* Called back from calc, and itself calling into calc again. */
static int square(int x) { return x * x + calc_add(0, 0); }

int app_apply(int x, int (*fn)(int)) { return fn(x) + 1; }

int app_chain(int depth) { return depth <= 0 ? 0 : 10 + calc_chain(depth - 1); }

#define THREADS 16
#define ROUNDS 500

static void *hammer(void *arg)
{
    int base = (int)(long)arg;
    int v[64];
    for (int r = 0; r < ROUNDS; r++) {
        long want = 0;
        for (int i = 0; i < 64; i++) {
            v[i] = base * 1000 + r + i;
            want += v[i];
        }
        if (calc_sum(v, 64) != want)
            return (void *)1;
    }
    return NULL;
}

int main(void)
{
    /* CROSSINGS_DEEP=N: a mutual recursion N calls deep across the boundary, then one more call. */
    const char *deep = getenv("CROSSINGS_DEEP");
    if (deep) {
        printf("deep %d\n", calc_chain(atoi(deep)));
        printf("add %d\n", calc_add(2, 40));
        return 0;
    }
    int v[5] = {1, 2, 3, 4, 5};
    char buf[32] = "";
    double d[4] = {1, 2, 3, 4};
    char word[] = "quarantine";
    struct point p = {1, 2, 0.25};

    printf("inits %d\n", calc_inits());
    printf("add %d\n", calc_add(2, 40));
    printf("sum %ld\n", calc_sum(v, 5));
    printf("fill %d '%s'\n", calc_fill(buf, sizeof buf), buf);
    calc_scale(d, 2, 1.5);
    printf("scale %.2f %.2f %.2f %.2f\n", d[0], d[1], d[2], d[3]);
    printf("upper %d %s\n", calc_upper(word), word);
    char *g = calc_greet("world");
    printf("greet %s\n", g);
    free(g);
    p = calc_move(p, 5);
    printf("move %d %d %.2f\n", p.x, p.y, p.w);
    struct session *s = calc_open(77);
    printf("session %d\n", calc_session_id(s));
    calc_close(s);
    printf("chain %d\n", calc_chain(5));
    printf("relay %d\n", calc_via_relay(7));
    int ids[3] = {1, 2, 3}, more[1] = {40};
    unsigned char body[4] = {10, 20, 30, 40};
    struct request rq[2] = {
        {"alpha", {3, ids}, 2, body, (void *)0x1234},
        {"be", {1, more}, 1, body + 2, NULL},
    };
    printf("deep %ld %ld %d\n", calc_digest(&rq[0]), calc_digest_all(rq, 2), calc_tags_total(rq[1].tags));
    printf("callbacks %d %d\n", calc_each(4, square), calc_use_app_apply(3));
    char names_out[6] = "";
    int names = calc_names(1, "abc", 3, names_out, 5, 2, 3, 4, 5, 6);
    printf("names %d %s\n", names, names_out);
    /* Output buffers of every size (the callee's thread's scratch memory, and past it, malloc's)
     * start zeroed though the callee wrote all over the same memory the call before. */
    static char big[100000];
    long seen = 0, back = 0;
    for (size_t n = 1000; n <= sizeof big; n *= 3) {
        calc_names(0, "abc", 3, big, n, 0, 0, 0, 0, 0);
        memset(big, 0, n);
        seen += calc_nonzero(big, n);
        back += memchr(big, 'z', n) == big && !memchr(big, 0, n);
    }
    printf("zeroed %ld %ld\n", seen, back);
    /* Of an output buffer, what crosses back ends at its last byte that is not zero, and the rest
     * is zeros again in the caller's buffer (and nothing past it): every length to 200 with that
     * byte at every place, or none, and 4 KiB with it about the ends of 64-byte blocks. */
    static const size_t at_4k[] = {0, 1, 7, 8, 63, 64, 65, 4031, 4032, 4033, 4088, 4095, 4096};
    static char mark_in[4096], mark_out[4097];
    long marks = 0, wrong = 0;
    for (size_t n = 1; n <= 4096; n = n < 200 ? n + 1 : 4096) {
        for (size_t k = 0; k <= (n == 4096 ? sizeof at_4k / sizeof *at_4k - 1 : n); k++) {
            size_t at = n == 4096 ? at_4k[k] : k;
            memset(mark_in, 0, n);
            if (at < n)
                mark_in[at] = 'x';
            memset(mark_out, 0x55, n + 1);
            calc_names(0, mark_in, n, mark_out, n, 0, 0, 0, 0, 0);
            wrong += memcmp(mark_out, mark_in, n) != 0 || mark_out[n] != 0x55;
            marks++;
        }
        if (n == 4096)
            break;
    }
    printf("marks %ld %ld\n", marks, wrong);
    generation = 5;
    int bumped = calc_bump_generation();
    printf("shared %d %d\n", bumped, generation);

    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += r != NULL;
    }
    printf("threads %d of %d agree\n", THREADS - bad, THREADS);
    fprintf(stderr, "calc runs in %s process\n", calc_pid() == (int)getpid() ? "this" : "another");
    return bad;
}
