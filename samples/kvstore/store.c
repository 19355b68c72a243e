#include "qpm.h"
QPM_FILE_COMPONENT(store);

/*
 * store.c - the authoritative key-value table of the kvstore server.
 *
 * A chained hash table that doubles its bucket array as it fills.  One reader-writer
 * lock guards the whole table: lookups, which dominate, run in parallel, and a single
 * lock keeps resizing simple.  Where glibc offers it the lock prefers writers, so a
 * steady stream of GETs cannot starve a SET.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore.h"

#define INITIAL_BUCKETS 1024u
/* Grow once the average chain would exceed this many entries. */
#define MAX_LOAD 2u

struct entry {
    struct entry *next;
    uint64_t hash;
    size_t value_len;
    char *value;
    char key[]; /* NUL-terminated */
};

#ifdef PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
#else
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
#endif

/* The bucket array is allocated on first insert, so an empty store needs no setup. */
static struct entry **buckets;
static size_t bucket_count;
static size_t entry_count;

/* A failing lock call means corrupted state; continuing would only spread the damage. */
static void check_lock(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "store: %s failed (error %d)\n", what, rc);
        abort();
    }
}

static void read_lock(void)
{
    check_lock(pthread_rwlock_rdlock(&table_lock), "pthread_rwlock_rdlock");
}

static void write_lock(void)
{
    check_lock(pthread_rwlock_wrlock(&table_lock), "pthread_rwlock_wrlock");
}

static void unlock(void)
{
    check_lock(pthread_rwlock_unlock(&table_lock), "pthread_rwlock_unlock");
}

/* FNV-1a: cheap, and good enough for the short textual keys this server sees. */
static uint64_t hash_key(const char *key)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

/* Returns the key length, or 0 when the key is empty or longer than the protocol allows. */
static size_t valid_key_length(const char *key)
{
    if (key == NULL)
        return 0;
    size_t len = strnlen(key, KV_KEY_MAX + 1);
    return len > KV_KEY_MAX ? 0 : len;
}

/* Returns the link that points at the entry for `key`, or at the NULL ending its chain. */
static struct entry **find_link(const char *key, uint64_t hash)
{
    struct entry **link = &buckets[hash % bucket_count];
    while (*link != NULL) {
        if ((*link)->hash == hash && strcmp((*link)->key, key) == 0)
            break;
        link = &(*link)->next;
    }
    return link;
}

/* Called with the write lock held.  Failure to grow is harmless: chains just get longer. */
static void maybe_grow(void)
{
    if (entry_count <= bucket_count * MAX_LOAD || bucket_count > SIZE_MAX / 2 / sizeof *buckets)
        return;
    size_t new_count = bucket_count * 2;
    struct entry **fresh = calloc(new_count, sizeof *fresh);
    if (fresh == NULL)
        return;
    for (size_t i = 0; i < bucket_count; i++) {
        struct entry *e = buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            e->next = fresh[e->hash % new_count];
            fresh[e->hash % new_count] = e;
            e = next;
        }
    }
    free(buckets);
    buckets = fresh;
    bucket_count = new_count;
}

/* Called with the write lock held. */
static int ensure_buckets(void)
{
    if (buckets != NULL)
        return 0;
    buckets = calloc(INITIAL_BUCKETS, sizeof *buckets);
    if (buckets == NULL)
        return -1;
    bucket_count = INITIAL_BUCKETS;
    return 0;
}

int store_get(const char *key, char *out, size_t cap)
{
    if (valid_key_length(key) == 0 || (out == NULL && cap > 0))
        return -1;
    uint64_t hash = hash_key(key);
    int result = -1;

    read_lock();
    if (buckets != NULL) {
        struct entry *e = *find_link(key, hash);
        if (e != NULL) {
            if (e->value_len <= cap && e->value_len > 0)
                memcpy(out, e->value, e->value_len);
            result = (int)e->value_len;
        }
    }
    unlock();
    return result;
}

/* Allocates a new entry holding `value`; the caller links it in. */
static struct entry *new_entry(const char *key, size_t key_len, uint64_t hash, char *value,
                               size_t value_len)
{
    struct entry *e = malloc(sizeof *e + key_len + 1);
    if (e == NULL)
        return NULL;
    e->next = NULL;
    e->hash = hash;
    e->value = value;
    e->value_len = value_len;
    memcpy(e->key, key, key_len + 1);
    return e;
}

int store_set(const char *key, const char *val, size_t len)
{
    size_t key_len = valid_key_length(key);
    if (key_len == 0 || len > KV_VALUE_MAX || (val == NULL && len > 0))
        return -1;

    /* Copy the value before locking so the write lock is held only for pointer updates. */
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    if (len > 0)
        memcpy(copy, val, len);
    copy[len] = '\0';

    uint64_t hash = hash_key(key);
    char *garbage = NULL;
    int result = 0;

    write_lock();
    if (ensure_buckets() != 0) {
        garbage = copy;
        result = -1;
    } else {
        struct entry **link = find_link(key, hash);
        if (*link != NULL) {
            garbage = (*link)->value;
            (*link)->value = copy;
            (*link)->value_len = len;
        } else if ((*link = new_entry(key, key_len, hash, copy, len)) != NULL) {
            entry_count++;
            maybe_grow();
        } else {
            garbage = copy;
            result = -1;
        }
    }
    unlock();

    free(garbage);
    return result;
}

int store_del(const char *key)
{
    if (valid_key_length(key) == 0)
        return -1;
    uint64_t hash = hash_key(key);
    struct entry *victim = NULL;

    write_lock();
    if (buckets != NULL) {
        struct entry **link = find_link(key, hash);
        victim = *link;
        if (victim != NULL) {
            *link = victim->next;
            entry_count--;
        }
    }
    unlock();

    if (victim == NULL)
        return 0;
    free(victim->value);
    free(victim);
    return 1;
}
