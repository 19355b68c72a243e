/*
 * put_back.c - what qrt_put_back sends of an out buffer: exactly its bytes up to the last one that
 * is not zero, for every length to 600 with that byte at every place (or none), for sizes about
 * the scan's blocks (64 and 128 bytes) up to 64 KiB, and at start addresses of every alignment
 * the scan's vector loads meet.  Each message is decoded with qrt_get_back and compared.
 *
 * Prints "checked N" and exits 0, or prints the first case that differs and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qrt.h"

#define MAX (64u * 1024u)

static uint8_t area[MAX + 64];
static uint8_t msg[MAX + 256];
static unsigned long checked;

/* The buffer of n bytes at offset `at`, its last non-zero byte at `last` (or none when last is
 * n), sent and read back. */
static int check(size_t at, size_t n, size_t last, unsigned seed)
{
    uint8_t *b = area + at;
    memset(b, 0, n);
    if (last < n) {
        for (size_t i = 0; i < last; i++)     /* bytes before it, zeros among them */
            b[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16 & 3 ? seed >> 20 : 0);
        b[last] = (uint8_t)(1 + seed % 255);
    }
    size_t want = n;                            /* the reference: one byte at a time */
    while (want && !b[want - 1])
        want--;
    struct qrt_wr w = {.base = msg, .cap = sizeof msg};
    qrt_put_back(&w, b, n);
    struct qrt_rd r = {.base = msg, .len = w.len};
    int present;
    size_t sent;
    const uint8_t *p = qrt_get_back(&r, n, &present, &sent);
    checked++;
    if (w.err || r.err || !present || sent != want || r.pos != r.len || (sent && memcmp(p, b, sent))) {
        printf("offset %zu, %zu bytes, last non-zero at %zu: sent %zu, want %zu (err %d %d)\n",
               at, n, last, sent, want, w.err, r.err);
        return 1;
    }
    return 0;
}

int main(void)
{
    static const size_t offsets[] = {0, 1, 7, 8, 15, 16, 31, 33, 63};
    static const size_t sizes[] = {1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 65535, 65536};
    unsigned seed = 1;
    for (size_t o = 0; o < sizeof offsets / sizeof *offsets; o++) {
        for (size_t n = 0; n <= 600; n++)
            for (size_t last = 0; last <= n; last++)
                if (check(offsets[o], n, last, seed++))
                    return 1;
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            size_t n = sizes[s];
            /* the last non-zero byte about every 64-byte boundary, mid-block, at the end, or none */
            for (size_t j = 0; j <= n / 64 + 1; j++)
                for (size_t d = 0; d < 5; d++) {
                    size_t k = 64 * j + (size_t[]){0, 1, 30, 62, 63}[d];
                    if (k <= n && check(offsets[o], n, k, seed++))
                        return 1;
                }
            if (check(offsets[o], n, n - 1, seed++))
                return 1;
        }
    }
    printf("checked %lu\n", checked);
    return 0;
}
