/*
 * out_alloc.c - every out buffer a callee gets is zeros (runtime/wire.c's qrt_out_alloc), though
 * the thread's scratch that it comes from was written all over by the calls before: seeded random
 * runs of what a dispatcher does with it, checked against the buffers themselves.
 *
 * A "call" takes none to two out buffers of random sizes (some past the scratch, from calloc),
 * sometimes above a message copy that it fills (as take_message does) and may send part of back
 * (an in-out buffer, which is the callee's in the message itself), has its callee write into
 * them (nothing, a few bytes, bytes with zeros between, all of it), then sends them back with
 * qrt_put_back, or, as on an error path, sends none or only some, and gives them back in the
 * order a stub does (first to last) or the other, and mostly zeroes again what the last one sent
 * had written, as serve_one does once its answer is out (qrt__settle); now and then scratch is
 * taken and written before that, which must leave it as written.  Some calls nest a whole call
 * inside themselves, between the callee's writes and the sending (a callee that calls back into a
 * function that is served on the same thread).  Each buffer is checked to be all zeros when it is
 * handed out.  First, one case by hand: an in-out buffer sent from a message copy, and an out
 * buffer taken where it was and given back unsent.
 *
 * Prints "checked N" (buffers checked) and exits 0, or prints the first buffer that was not zeros
 * and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qrt.h"

void *qrt__scratch_take(size_t n, size_t *mark);   /* runtime/qrt_internal.h */
void qrt__scratch_give(size_t mark);
void qrt__settle(void);

static unsigned long checked, calls;
static unsigned seed = 1;
static uint8_t msg[300u * 1024u];

static unsigned rnd(unsigned n)
{
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) % n;
}

static size_t size(void)
{
    static const size_t sizes[] = {1, 15, 16, 17, 100, 4096, 4097, 20000, 70000};
    return rnd(3) ? sizes[rnd(sizeof sizes / sizeof *sizes)] : 1 + rnd(9000);
}

/* What a callee writes into its buffer b of n bytes. */
static void write_into(uint8_t *b, size_t n)
{
    switch (rnd(5)) {
    case 0:
        break;                                  /* nothing */
    case 1:
        b[rnd((unsigned)n)] = (uint8_t)(1 + rnd(255));     /* one byte anywhere */
        break;
    case 2:
        memset(b, 'v', n < 40 ? n : 40);        /* a short value at the start */
        break;
    case 3:
        for (size_t i = 0; i < n; i += 1 + rnd(300))        /* bytes with zeros between */
            b[i] = (uint8_t)(1 + rnd(255));
        break;
    default:
        memset(b, 0xff, n);                     /* all of it */
    }
}

/* An out buffer of n bytes, checked to be zeros; NULL (and the first byte that is not, printed
 * after `what`) when it is not. */
static uint8_t *zeros_of(size_t n, size_t *mark, const char *what)
{
    uint8_t *b = qrt_out_alloc(n, mark);
    if (!b) {
        printf("%s: no buffer of %zu bytes\n", what, n);
        return NULL;
    }
    checked++;
    for (size_t j = 0; j < n; j++)
        if (b[j]) {
            printf("%s: a buffer of %zu bytes at scratch mark %zu has byte %zu = %u\n", what, n, *mark, j, b[j]);
            return NULL;
        }
    return b;
}

static int call(int depth)
{
    calls++;
    size_t copy_mark = SIZE_MAX;
    if (rnd(4) == 0) {
        size_t len = 1 + (rnd(2) ? rnd(200) : rnd(20000));
        uint8_t *copy = qrt__scratch_take(len, &copy_mark);
        if (copy) {
            size_t zeros = rnd((unsigned)len + 1);  /* a message taken out of its channel, ending */
            memset(copy, 0xee, len - zeros);        /* in zeros or not */
            memset(copy + len - zeros, 0, zeros);
            if (rnd(2)) {
                /* An in-out buffer is the callee's in the message itself, and is sent back from
                 * there: no out buffer, and never given back as one. */
                struct qrt_wr w = {.base = msg, .cap = sizeof msg};
                qrt_put_back(&w, copy, rnd(2) ? len : 1 + rnd((unsigned)len));
            }
        }
    }
    uint8_t *out[3];
    size_t n[3], mark[3];
    int k = (int)rnd(3);     /* none: a call whose buffers are all in-out ones, or none */
    char what[64];
    snprintf(what, sizeof what, "call %lu (depth %d)", calls, depth);
    for (int i = 0; i < k; i++) {
        n[i] = size();
        if (!(out[i] = zeros_of(n[i], &mark[i], what)))
            return 1;
    }
    for (int i = 0; i < k; i++)
        write_into(out[i], n[i]);
    if (depth < 3 && rnd(5) == 0 && call(depth + 1))
        return 1;
    int sent = k && rnd(3) == 0 ? (int)rnd((unsigned)k) : k;    /* an error path sends fewer, or none */
    for (int i = 0; i < sent; i++) {
        struct qrt_wr w = {.base = msg, .cap = sizeof msg};
        qrt_put_back(&w, out[i], n[i]);
    }
    if (rnd(2))
        for (int i = 0; i < k; i++)
            qrt_out_free(out[i], mark[i]);
    else
        for (int i = k - 1; i >= 0; i--)
            qrt_out_free(out[i], mark[i]);
    /* The answer posted, serve_one zeroes again what the last buffer sent back had written.
     * Scratch taken before that (serve_one takes none) is the taker's: qrt__settle leaves it. */
    if (rnd(8) == 0) {
        size_t len = 1 + rnd(300), taken_mark;
        uint8_t *t = qrt__scratch_take(len, &taken_mark);
        if (t) {
            memset(t, 0xcc, len);
            qrt__settle();
            for (size_t j = 0; j < len; j++)
                if (t[j] != 0xcc) {
                    printf("%s: scratch taken before qrt__settle has byte %zu = %u\n", what, j, t[j]);
                    return 1;
                }
            qrt__scratch_give(taken_mark);
        }
    }
    if (rnd(4))
        qrt__settle();
    if (copy_mark != SIZE_MAX)
        qrt__scratch_give(copy_mark);
    return 0;
}

int main(void)
{
    /* An in-out buffer sent from a message copy (its last 54 bytes zeros), then, where it was, an
     * out buffer the callee fills and that is given back unsent (an error path): what was sent of
     * the in-out one says nothing of it. */
    size_t mark;
    uint8_t *copy = qrt__scratch_take(64, &mark);
    memset(copy, 0xee, 10);
    struct qrt_wr w = {.base = msg, .cap = sizeof msg};
    qrt_put_back(&w, copy, 64);
    qrt__scratch_give(mark);
    uint8_t *b = zeros_of(40, &mark, "after an in-out buffer was sent");
    if (!b)
        return 1;
    memset(b, 0xff, 40);
    qrt_out_free(b, mark);
    qrt__settle();
    if (!(b = zeros_of(64, &mark, "after an in-out buffer was sent")))
        return 1;
    qrt_out_free(b, mark);
    for (int i = 0; i < 50000; i++)
        if (call(0))
            return 1;
    printf("checked %lu\n", checked);
    return 0;
}
