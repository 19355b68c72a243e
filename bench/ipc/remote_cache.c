/*
 * remote_cache.c - kvstore's cache calls made in another process by hand, for linking with
 * handoff.c built with -DQB_REMOTE and -Wl,--wrap=cache_get,--wrap=cache_put,
 * --wrap=cache_invalidate into the plain kvstore.
 *
 * Each call copies what it needs into the calling thread's qb_data() (the key as a string, a
 * value by its length), makes one hand-off, and the peer process's thread runs the real function
 * on the peer's own cache; cache_get's answer comes back as its return value and the value's
 * bytes, only as many as it has.  So isolate-cache's crossings as a program written for them
 * would make them: the work and its memory in the other process, the bytes each call needs
 * copied, over the cheapest hand-off; no generic copy of the whole out buffer, no protocol, no
 * checks of what comes back and no supervision.  bench/kvstore.py measures it as the floor with
 * the work moved (`remote`), beside the bare hand-offs (`handoff`).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned char *qb_data(void);
void qb_remote(uint32_t fn);

int __real_cache_get(const char *key, char *out, size_t cap);
void __real_cache_put(const char *key, const char *val, size_t len);
void __real_cache_invalidate(const char *key);

enum { RC_GET = 1, RC_PUT, RC_INVALIDATE };

/* The layout of qb_data() (handoff.c's QB_DATA bytes, 8192): a size, a result, the key, a value. */
#define RC_KEY 16
#define RC_KEY_MAX 496                          /* with its NUL */
#define RC_VALUE (RC_KEY + RC_KEY_MAX)
#define RC_VALUE_MAX (8192 - RC_VALUE)

struct rc_head {
    uint64_t size;      /* cache_get's cap, cache_put's len */
    int32_t result;     /* cache_get's */
};

static void rc_too_big(const char *what)
{
    fprintf(stderr, "remote_cache: %s too long for the hand-off's data\n", what);
    abort();
}

static unsigned char *rc_key(const char *key)
{
    unsigned char *d = qb_data();
    size_t n = strlen(key) + 1;
    if (n > RC_KEY_MAX)
        rc_too_big("a key");
    memcpy(d + RC_KEY, key, n);
    return d;
}

int __wrap_cache_get(const char *key, char *out, size_t cap)
{
    unsigned char *d = rc_key(key);
    struct rc_head *h = (struct rc_head *)d;
    if (cap > RC_VALUE_MAX)
        rc_too_big("an out buffer");
    h->size = cap;
    qb_remote(RC_GET);
    int len = h->result;
    if (len > 0 && (size_t)len <= h->size)
        memcpy(out, d + RC_VALUE, (size_t)len);
    return len;
}

void __wrap_cache_put(const char *key, const char *val, size_t len)
{
    unsigned char *d = rc_key(key);
    if (len > RC_VALUE_MAX)
        rc_too_big("a value");
    ((struct rc_head *)d)->size = len;
    memcpy(d + RC_VALUE, val, len);
    qb_remote(RC_PUT);
}

void __wrap_cache_invalidate(const char *key)
{
    rc_key(key);
    qb_remote(RC_INVALIDATE);
}

/* In the peer process. */
void qb_peer_call(uint32_t fn, unsigned char *data)
{
    struct rc_head *h = (struct rc_head *)data;
    const char *key = (const char *)data + RC_KEY;
    switch (fn) {
    case RC_GET:
        h->result = __real_cache_get(key, (char *)data + RC_VALUE, h->size);
        break;
    case RC_PUT:
        __real_cache_put(key, (const char *)data + RC_VALUE, h->size);
        break;
    case RC_INVALIDATE:
        __real_cache_invalidate(key);
        break;
    }
}
