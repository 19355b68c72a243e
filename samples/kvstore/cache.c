#include "qpm.h"
QPM_FILE_COMPONENT(cache);

/*
 * cache.c - a small fixed-capacity read cache in front of the store.
 *
 * Slots live in one static array, replaced with the CLOCK algorithm: a hit sets the
 * slot's reference bit, and the eviction hand skips (and clears) referenced slots once
 * before it takes one.  A hash index of 1-based slot numbers, where 0 means "none",
 * finds keys without scanning; that encoding makes the all-zero static state a valid
 * empty cache, so the cache works even before cache_init() runs.
 *
 * Values longer than CACHE_VALUE_MAX are not cached: they would pin a lot of memory for
 * one slot, and the store serves them just as correctly.
 *
 * KVSTORE_CACHE_RACE=1 in the environment turns on an "optimisation" with a real concurrency
 * bug, kept here on purpose to show what isolation contains: cache_get copies a hit's value
 * after releasing the lock, to hold it shorter, and checks afterwards that the slot still holds
 * the key.  Meanwhile another thread can evict the slot, which frees the value and sets its
 * pointer to NULL: the copy then reads freed memory or dereferences NULL, and the process dies
 * with SIGSEGV, at a moment that depends on the interleaving.  (It also skips setting the
 * reference bit, to keep the hit path free of writes, so CLOCK may pick the slot being read.)
 * On two cores the window is a few nanoseconds and rarely meets an eviction in a short run:
 * KVSTORE_CACHE_RACE_US=N stands for N microseconds of other work done in the window (a large
 * value, a page fault, a preemption), which makes the race show within seconds.
 *
 * KVSTORE_CACHE_CRASH_EVERY=N injects a fault instead, at a rate a benchmark can count on:
 * every Nth cache_get of a process dereferences NULL.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvstore.h"

#define CACHE_SLOTS 256u
#define CACHE_BUCKETS 512u /* a power of two, twice the slots, so chains stay short */
#define CACHE_VALUE_MAX 1024u

struct slot {
    uint16_t next; /* 1-based index of the next slot in the same bucket, 0 = end */
    bool used;
    bool referenced;
    uint64_t hash;
    size_t value_len;
    char key[KV_KEY_MAX + 1];
    char *value; /* malloc'd, freed when the slot is dropped */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[CACHE_SLOTS];
static uint16_t heads[CACHE_BUCKETS]; /* 1-based slot index, 0 = empty bucket */
static size_t clock_hand;
static bool racy_reads; /* KVSTORE_CACHE_RACE: see the top of this file */
static long race_window_us;
static long crash_every;         /* KVSTORE_CACHE_CRASH_EVERY: see the top of this file */
static _Atomic long gets;

/* A failing lock call means corrupted state; continuing would only spread the damage. */
static void check_lock(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "cache: %s failed (error %d)\n", what, rc);
        abort();
    }
}

static void lock(void)
{
    check_lock(pthread_mutex_lock(&cache_lock), "pthread_mutex_lock");
}

static void unlock(void)
{
    check_lock(pthread_mutex_unlock(&cache_lock), "pthread_mutex_unlock");
}

/* FNV-1a, as in the store; the cache keeps its own copy to stay self-contained. */
static uint64_t hash_key(const char *key)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

static bool key_fits(const char *key)
{
    return key != NULL && strnlen(key, KV_KEY_MAX + 1) <= KV_KEY_MAX;
}

static uint16_t *bucket_of(uint64_t hash)
{
    return &heads[hash & (CACHE_BUCKETS - 1)];
}

/* Returns the link that holds the 1-based index of `key`'s slot, or the chain's final 0. */
static uint16_t *find_link(const char *key, uint64_t hash)
{
    uint16_t *link = bucket_of(hash);
    while (*link != 0) {
        struct slot *s = &slots[*link - 1];
        if (s->hash == hash && strcmp(s->key, key) == 0)
            break;
        link = &s->next;
    }
    return link;
}

/* Unlinks slot `index` (0-based) from its chain and marks it free. */
static void drop_slot(size_t index)
{
    struct slot *s = &slots[index];
    uint16_t *link = bucket_of(s->hash);
    while (*link != 0 && *link != index + 1)
        link = &slots[*link - 1].next;
    if (*link != 0)
        *link = s->next;
    s->used = false;
    s->referenced = false;
    s->next = 0;
    char *value = s->value;
    s->value = NULL;
    s->value_len = 0;
    free(value);
}

/* Advances the CLOCK hand to a slot that may be reused, evicting its entry. */
static size_t claim_slot(void)
{
    for (;;) {
        size_t index = clock_hand;
        clock_hand = (clock_hand + 1) % CACHE_SLOTS;
        struct slot *s = &slots[index];
        if (!s->used)
            return index;
        if (s->referenced) {
            s->referenced = false;
            continue;
        }
        drop_slot(index);
        return index;
    }
}

void cache_init(void)
{
    lock();
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        free(slots[i].value);
    memset(slots, 0, sizeof slots);
    memset(heads, 0, sizeof heads);
    clock_hand = 0;
    const char *race = getenv("KVSTORE_CACHE_RACE");
    const char *window = getenv("KVSTORE_CACHE_RACE_US");
    racy_reads = race && strcmp(race, "1") == 0;
    race_window_us = window ? atol(window) : 0;
    const char *every = getenv("KVSTORE_CACHE_CRASH_EVERY");
    crash_every = every ? atol(every) : 0;
    unlock();
}

int cache_get(const char *key, char *out, size_t cap)
{
    if (!key_fits(key) || (out == NULL && cap > 0))
        return -1;
    if (crash_every > 0 && atomic_fetch_add(&gets, 1) % crash_every == crash_every - 1) {
        char *volatile nowhere = NULL;
        out[0] = *nowhere;      /* the injected fault */
    }
    uint64_t hash = hash_key(key);
    int result = -1;

    lock();
    uint16_t index = *find_link(key, hash);
    if (index != 0) {
        struct slot *s = &slots[index - 1];
        size_t len = s->value_len;
        if (racy_reads) {
            /* The bug: the copy runs after the lock is released, through s->value, which an
             * eviction on another thread may free and clear at any moment. */
            unlock();
            if (len > cap)
                return -1;
            if (race_window_us > 0) {
                struct timespec t = {0, race_window_us * 1000};
                nanosleep(&t, NULL);
            }
            for (size_t i = 0; i < len; i++)
                out[i] = s->value[i];
            /* The check that was meant to make it safe comes too late to help. */
            if (s->value_len != len || strcmp(s->key, key) != 0)
                return -1;
            return (int)len;
        }
        s->referenced = true;
        if (len <= cap && len > 0)
            memcpy(out, s->value, len);
        result = (int)len;
    }
    unlock();
    return result;
}

void cache_put(const char *key, const char *val, size_t len)
{
    if (!key_fits(key))
        return;
    uint64_t hash = hash_key(key);

    lock();
    uint16_t *link = find_link(key, hash);
    if (len > CACHE_VALUE_MAX || (val == NULL && len > 0)) {
        /* An uncacheable value must still replace what the cache knew about this key. */
        if (*link != 0)
            drop_slot(*link - 1u);
    } else {
        size_t index;
        if (*link != 0) {
            index = *link - 1u;
        } else {
            index = claim_slot();
            struct slot *s = &slots[index];
            s->hash = hash;
            strcpy(s->key, key); /* key_fits() bounded it by the buffer size */
            s->used = true;
            uint16_t *head = bucket_of(hash);
            s->next = *head;
            *head = (uint16_t)(index + 1);
        }
        struct slot *s = &slots[index];
        char *copy = malloc(len ? len : 1);
        if (copy == NULL) {
            /* No memory for the copy: forget the key rather than keep a stale value. */
            drop_slot(index);
        } else {
            if (len > 0)
                memcpy(copy, val, len);
            free(s->value);
            s->value = copy;
            s->value_len = len;
            s->referenced = true;
        }
    }
    unlock();
}

void cache_invalidate(const char *key)
{
    if (!key_fits(key))
        return;
    uint64_t hash = hash_key(key);

    lock();
    uint16_t index = *find_link(key, hash);
    if (index != 0)
        drop_slot(index - 1u);
    unlock();
}
