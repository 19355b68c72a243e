/*
 * fuzz_wire.c - feeds random messages to the decoder (qrt_get, qrt_get_blob, qrt_get_string,
 * qrt_get_back)
 * the way generated dispatchers and stubs call it, under AddressSanitizer.  Deterministic: the
 * seed is the first argument.  Prints how many messages were accepted and rejected.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qrt.h"

static uint64_t state;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

int main(int argc, char **argv)
{
    state = argc > 1 ? strtoull(argv[1], NULL, 10) | 1 : 88172645463325252ull;
    long rounds = argc > 2 ? atol(argv[2]) : 200000;
    long accepted = 0, rejected = 0;
    uint8_t scratch[4096];
    for (long n = 0; n < rounds; n++) {
        /* A message: half the time a well-formed one, mutated; otherwise random bytes. */
        size_t len = next() % 512;
        uint8_t *msg = malloc(len ? len : 1);
        struct qrt_wr w = {.base = scratch, .cap = sizeof scratch};
        size_t expect = next() % 100;
        if (next() & 1) {
            int x = (int)next();
            qrt_put(&w, &x, sizeof x);
            uint8_t blob[100];
            size_t bn = next() % sizeof blob;
            if (next() % 4)
                expect = bn;        /* mostly the length the decoder will be told to expect */
            memset(blob, 'b', bn);
            qrt_put_blob(&w, blob, bn);
            qrt_put_string(&w, (next() & 1) ? "hello" : NULL);
            memset(blob + bn / 2, 0, bn - bn / 2);     /* a buffer going back: trailing zeros */
            qrt_put_back(&w, (next() % 4) ? blob : NULL, bn);
            len = w.len < len ? w.len : len;
            memcpy(msg, scratch, len);
            if (len && (next() & 1))
                msg[next() % len] ^= (uint8_t)(1u << (next() % 8));
        } else {
            for (size_t i = 0; i < len; i++)
                msg[i] = (uint8_t)next();
        }
        struct qrt_rd r = {.base = msg, .len = len};
        int x;
        int present;
        size_t slen;
        qrt_get(&r, &x, sizeof x);
        const uint8_t *b = qrt_get_blob(&r, expect, &present);
        volatile uint8_t sink = 0;
        if (present && b) {
            /* Touch every byte the decoder vouched for. */
            for (size_t i = 0; i < r.pos && i < len; i++)
                sink ^= msg[i];
        }
        const char *s = qrt_get_string(&r, &present, &slen);
        if (present)
            sink ^= (uint8_t)s[slen];   /* the NUL it promised */
        size_t sent;
        const uint8_t *back = qrt_get_back(&r, expect, &present, &sent);
        if (present) {
            if (sent > expect)
                abort();                /* more bytes than the buffer they go back into */
            for (size_t i = 0; i < sent; i++)
                sink ^= back[i];
        }
        (void)sink;
        if (r.err)
            rejected++;
        else
            accepted++;
        free(msg);
    }
    printf("fuzz_wire: %ld accepted, %ld rejected\n", accepted, rejected);
    return 0;
}
