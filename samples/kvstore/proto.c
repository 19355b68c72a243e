#include "qpm.h"
QPM_FILE_COMPONENT(proto);

/*
 * proto.c - the kvstore text protocol.
 *
 * One request per line; words are separated by single spaces and commands are upper case:
 *
 *   GET key          -> VALUE <value> | NOT_FOUND
 *   SET key value    -> STORED           (value = the rest of the line, spaces included)
 *   DEL key          -> DELETED | NOT_FOUND
 *   STATS            -> STATS gets=N sets=N dels=N hits=N misses=N
 *   anything else    -> ERROR <reason>
 *
 * Keys are 1 to KV_KEY_MAX bytes with no spaces or control characters; values are at
 * most KV_VALUE_MAX bytes and may be empty.
 *
 * Reads go to the cache first and fill it from the store on a miss.  A miss that refills
 * the cache must not interleave with a SET or DEL of the same key, or the cache could be
 * refilled with the value that was just replaced.  Requests therefore hold a per-key
 * stripe lock across the store and cache calls; different keys almost always use
 * different stripes and proceed in parallel.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvstore.h"

#define STRIPES 64u /* a power of two */

enum verb { VERB_GET, VERB_SET, VERB_DEL, VERB_STATS };

struct request {
    enum verb verb;
    char key[KV_KEY_MAX + 1];
    const char *value; /* points into the request line */
    size_t value_len;
};

static pthread_mutex_t stripes[STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

/* A failing lock call means corrupted state; continuing would only spread the damage. */
static void check_pthread(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "proto: %s failed (error %d)\n", what, rc);
        abort();
    }
}

static void init_stripes(void)
{
    for (size_t i = 0; i < STRIPES; i++)
        check_pthread(pthread_mutex_init(&stripes[i], NULL), "pthread_mutex_init");
}

static pthread_mutex_t *stripe_of(const char *key)
{
    /* FNV-1a; only the spread matters here, not agreement with the other components. */
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return &stripes[h & (STRIPES - 1)];
}

static pthread_mutex_t *lock_key(const char *key)
{
    check_pthread(pthread_once(&stripes_once, init_stripes), "pthread_once");
    pthread_mutex_t *m = stripe_of(key);
    check_pthread(pthread_mutex_lock(m), "pthread_mutex_lock");
    return m;
}

static void unlock_key(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

/* Writes head followed by body_len bytes of body, NUL-terminated; -1 if it does not fit. */
static int reply_join(char *reply, size_t cap, const char *head, const char *body,
                      size_t body_len)
{
    size_t head_len = strlen(head);
    if (cap == 0 || head_len >= cap || body_len >= cap - head_len)
        return -1;
    memcpy(reply, head, head_len);
    if (body_len > 0)
        memcpy(reply + head_len, body, body_len);
    reply[head_len + body_len] = '\0';
    return (int)(head_len + body_len);
}

static int reply_error(char *reply, size_t cap, const char *reason)
{
    return reply_join(reply, cap, "ERROR ", reason, strlen(reason));
}

/* Returns NULL when the word is a usable key, else the reason it is not. */
static const char *check_key(const char *word, size_t len)
{
    if (len == 0)
        return "missing key";
    if (len > KV_KEY_MAX)
        return "key too long";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)word[i];
        if (c < 0x20 || c == 0x7f)
            return "invalid character in key";
    }
    return NULL;
}

static int parse_verb(const char *word, size_t len, enum verb *verb)
{
    static const struct {
        const char *name;
        enum verb verb;
    } verbs[] = {
        {"GET", VERB_GET}, {"SET", VERB_SET}, {"DEL", VERB_DEL}, {"STATS", VERB_STATS},
    };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strlen(verbs[i].name) == len && memcmp(verbs[i].name, word, len) == 0) {
            *verb = verbs[i].verb;
            return 0;
        }
    }
    return -1;
}

/* Fills req from the text after the verb; returns NULL or the reason the line is bad. */
static const char *parse_arguments(const char *args, struct request *req)
{
    if (req->verb == VERB_STATS)
        return args == NULL ? NULL : "STATS takes no arguments";
    if (args == NULL)
        return "missing key";

    size_t key_len = strcspn(args, " ");
    const char *reason = check_key(args, key_len);
    if (reason != NULL)
        return reason;
    memcpy(req->key, args, key_len);
    req->key[key_len] = '\0';

    const char *after = args + key_len;
    if (req->verb != VERB_SET)
        return *after == '\0' ? NULL : "unexpected text after key";
    if (*after == '\0')
        return "missing value";
    req->value = after + 1;
    req->value_len = strlen(req->value);
    return req->value_len > KV_VALUE_MAX ? "value too long" : NULL;
}

static const char *parse_request(const char *line, struct request *req)
{
    size_t verb_len = strcspn(line, " ");
    if (verb_len == 0)
        return *line == '\0' ? "empty command" : "unexpected leading space";
    if (parse_verb(line, verb_len, &req->verb) != 0)
        return "unknown command";
    const char *args = line[verb_len] == ' ' ? line + verb_len + 1 : NULL;
    return parse_arguments(args, req);
}

/* Reads through the cache; returns the value length or -1.  Caller holds the key's stripe. */
static int lookup(const char *key, char *value, size_t cap)
{
    int len = cache_get(key, value, cap);
    if (len >= 0 && (size_t)len <= cap)
        return len;
    len = store_get(key, value, cap);
    if (len >= 0 && (size_t)len <= cap)
        cache_put(key, value, (size_t)len);
    return len;
}

static int do_get(const struct request *req, char *reply, size_t cap)
{
    char value[KV_VALUE_MAX];
    stats_count(KV_STAT_GET);

    pthread_mutex_t *m = lock_key(req->key);
    int len = lookup(req->key, value, sizeof value);
    unlock_key(m);

    if (len < 0) {
        stats_count(KV_STAT_MISS);
        return reply_join(reply, cap, "NOT_FOUND", NULL, 0);
    }
    stats_count(KV_STAT_HIT);
    /* The store refuses values over KV_VALUE_MAX, so this only guards against a bug. */
    if ((size_t)len > sizeof value)
        return reply_error(reply, cap, "stored value too large");
    return reply_join(reply, cap, "VALUE ", value, (size_t)len);
}

static int do_set(const struct request *req, char *reply, size_t cap)
{
    stats_count(KV_STAT_SET);

    pthread_mutex_t *m = lock_key(req->key);
    int rc = store_set(req->key, req->value, req->value_len);
    cache_invalidate(req->key);
    unlock_key(m);

    if (rc != 0)
        return reply_error(reply, cap, "cannot store value");
    return reply_join(reply, cap, "STORED", NULL, 0);
}

static int do_del(const struct request *req, char *reply, size_t cap)
{
    stats_count(KV_STAT_DEL);

    pthread_mutex_t *m = lock_key(req->key);
    int rc = store_del(req->key);
    cache_invalidate(req->key);
    unlock_key(m);

    if (rc < 0)
        return reply_error(reply, cap, "cannot delete key");
    return reply_join(reply, cap, rc > 0 ? "DELETED" : "NOT_FOUND", NULL, 0);
}

static int do_stats(char *reply, size_t cap)
{
    static const char head[] = "STATS ";
    if (cap <= sizeof head - 1)
        return -1;
    memcpy(reply, head, sizeof head - 1);
    int len = stats_format(reply + sizeof head - 1, cap - (sizeof head - 1));
    if (len < 0)
        return reply_error(reply, cap, "statistics unavailable");
    return (int)(sizeof head - 1) + len;
}

int proto_handle(const char *line, char *reply, size_t cap)
{
    if (line == NULL || reply == NULL || cap == 0)
        return -1;

    struct request req = {0};
    const char *reason = parse_request(line, &req);
    if (reason != NULL)
        return reply_error(reply, cap, reason);

    switch (req.verb) {
    case VERB_GET:
        return do_get(&req, reply, cap);
    case VERB_SET:
        return do_set(&req, reply, cap);
    case VERB_DEL:
        return do_del(&req, reply, cap);
    case VERB_STATS:
        return do_stats(reply, cap);
    }
    return reply_error(reply, cap, "unknown command");
}
