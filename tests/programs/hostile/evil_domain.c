/*
 * evil_domain.c - stands in for a domain executable and answers every call with a malicious
 * reply, chosen by EVIL_MODE.  The main process must reject each one cleanly (exit status 70,
 * "Bad message") with no memory error under AddressSanitizer.  EVIL_PREFIX (comma-separated
 * lengths) first answers that many calls with that many zero bytes each, the well-formed replies
 * of scalar calls, so that the garbage reaches a later call.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qrt_internal.h"

static void reply(struct qrt__chan *c, uint32_t kind, uint32_t fn, uint32_t len)
{
    c->kind = kind;
    c->fn = fn;
    c->len = len;
    atomic_store(&c->state, QRT_TO_CALLER);
    qrt__wake_all(&c->state);
}

int main(void)
{
    const char *mode = getenv("EVIL_MODE");
    const char *fd = getenv("QRT_SHM_FD");
    if (!mode || !fd)
        return 2;
    struct qrt__region *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(fd), 0);
    if (r == MAP_FAILED)
        return 1;
    atomic_store(&r->ready, 1);
    qrt__wake_all(&r->ready);
    static unsigned char open_[QRT_MAX_CHANNELS];
    const char *prefix = getenv("EVIL_PREFIX");
    for (unsigned n = 0;; n++) {
        /* The channels main opened: the ones it asked a serving thread for. */
        uint32_t wanted = atomic_load(&r->wanted);
        for (uint32_t k = 0; k < wanted && k < QRT_MAX_CHANNELS; k++)
            if (r->want[k] < QRT_MAX_CHANNELS)
                open_[r->want[k]] = 1;
        for (unsigned i = 0; i < QRT_MAX_CHANNELS; i++) {
            if (!open_[i])
                continue;
            struct qrt__chan *c = &r->chan[i];
            if (atomic_load(&c->state) != QRT_TO_SERVER)
                continue;
            uint8_t *buf = (uint8_t *)c->buf;
            memset(buf, 0, 64);
            if (prefix && *prefix) {
                char *end;
                unsigned long len = strtoul(prefix, &end, 10);
                prefix = *end == ',' ? end + 1 : end;
                reply(c, QRT_K_RETURN, 0, (uint32_t)(len < 64 ? len : 64));
            } else if (!strcmp(mode, "oversized")) {
                reply(c, QRT_K_RETURN, 0, QRT_CHAN_BUF + 4096);
            } else if (!strcmp(mode, "empty")) {
                reply(c, QRT_K_RETURN, 0, 0);
            } else if (!strcmp(mode, "kind")) {
                reply(c, 77, 0, 8);
            } else if (!strcmp(mode, "error")) {
                reply(c, QRT_K_ERROR, 0xffffffffu, 0);
            } else if (!strcmp(mode, "zeros")) {
                reply(c, QRT_K_RETURN, 0, 64);         /* fine for scalars, wrong for any blob */
            } else if (!strcmp(mode, "huge_blob")) {
                uint64_t huge = UINT64_MAX - 1;
                memcpy(buf + 8, &huge, sizeof huge);    /* after an 8-byte scalar return */
                memcpy(buf + 16, &huge, sizeof huge);
                reply(c, QRT_K_RETURN, 0, 64);
            } else {
                return 2;
            }
        }
        usleep(100);
    }
}
