/*
 * kvstore.h - interfaces between the components of the kvstore sample server.
 *
 * Every function declared here may be called from another component, so every pointer
 * parameter carries its marshalling annotation here, on the prototype.  Component state
 * never appears in this header: each component keeps its state static in its own file,
 * which is what lets any of them run in a separate process.
 *
 * Buffers marked QPM_OUT(cap) follow one convention: the callee writes at most `cap`
 * bytes.  A function that returns a length returns the full length of the result even
 * when it did not fit, so the caller detects truncation by comparing the result with
 * `cap`.
 */
#ifndef KVSTORE_H
#define KVSTORE_H

#include <stddef.h>

#include "qpm.h"

/* Protocol limits.  Keys are single words; values are the rest of a SET line. */
#define KV_KEY_MAX 250
#define KV_VALUE_MAX 4096

/* Longest reply text without its newline: "VALUE " plus a full value, with spare room. */
#define KV_REPLY_MAX (KV_VALUE_MAX + 64)

/* Counters kept by the stats component; passed to stats_count() as plain ints. */
enum kv_stat {
    KV_STAT_GET,
    KV_STAT_SET,
    KV_STAT_DEL,
    KV_STAT_HIT,
    KV_STAT_MISS,
    KV_STAT_KINDS
};

/*
 * proto: parses one request line (without its line terminator) and writes the reply
 * text, NUL-terminated and without a newline, into `reply`.  Returns the reply length,
 * or -1 if `cap` is too small for any reply.
 */
int proto_handle(const char *line QPM_STRING, char *reply QPM_OUT(cap), size_t cap);

/*
 * store: the authoritative table.  store_get() returns the value length, or -1 if the
 * key is absent; a value longer than `cap` is reported by its length and not copied.
 * store_set() returns 0, or -1 if the key or value is too long or memory ran out.
 * store_del() returns 1 if the key was removed, 0 if it was absent, -1 if it is invalid.
 */
int store_get(const char *key QPM_STRING, char *out QPM_OUT(cap), size_t cap);
int store_set(const char *key QPM_STRING, const char *val QPM_IN(len), size_t len);
int store_del(const char *key QPM_STRING);

/*
 * cache: a bounded read cache in front of the store.  It may forget anything at any
 * time (eviction, or a restart of its process), so callers treat a miss as "ask the
 * store".  cache_get() follows the store_get() convention.
 */
QPM_INIT void cache_init(void);
int cache_get(const char *key QPM_STRING, char *out QPM_OUT(cap), size_t cap);
void cache_put(const char *key QPM_STRING, const char *val QPM_IN(len), size_t len);
void cache_invalidate(const char *key QPM_STRING);

/*
 * stats: request counters.  stats_format() writes
 * "gets=N sets=N dels=N hits=N misses=N", NUL-terminated, and returns its length, or -1
 * if it did not fit in `cap`.
 */
QPM_INIT void stats_init(void);
void stats_count(int what);
int stats_format(char *out QPM_OUT(cap), size_t cap);

#endif /* KVSTORE_H */
