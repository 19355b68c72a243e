#include "qpm.h"
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The length beside a pointer names the count; a buffer the callee only writes is QPM_OUT. */
QPM_COMPONENT(kv) int kv_put(const char *key, size_t klen) { return (int)klen + key[0]; }
QPM_COMPONENT(kv) int kv_slice(const char *s, size_t slen) { return s[slen - 1]; }
QPM_COMPONENT(kv) int kv_get(const char *key, size_t nkey, char *out, size_t outlen) { memcpy(out, key, nkey < outlen ? nkey : outlen); return 0; }
QPM_COMPONENT(kv) int kv_format(char *buf, size_t n) { return snprintf(buf, n, "%d", 42); }
QPM_COMPONENT(kv) void kv_bump(char *buf, size_t len) { buf[len - 1]++; }
QPM_COMPONENT(kv) ssize_t kv_read(int fd QPM_FD, void *dst, size_t count) { return read(fd, dst, count); }
QPM_COMPONENT(kv) int kv_store(size_t len, const void *data) { return data != NULL && len > 0; }
QPM_COMPONENT(kv) void kv_zero(char *p, int n) { for (int i = 0; i < n; i++) p[i] = 0; }
QPM_COMPONENT(kv) static void kv_fill(char *d, size_t n) { memset(d, 1, n); }
QPM_COMPONENT(kv) void kv_wrap(char *d, size_t n) { kv_fill(d, n); }
QPM_COMPONENT(kv) void kv_name(char *out) { strcpy(out, "kv"); }
QPM_COMPONENT(kv) int kv_greet(const char *name, int flags) { return name[0] + flags; }
QPM_COMPONENT(kv) void *kv_grow(void *ptr, size_t size) { return realloc(ptr, size); }
QPM_COMPONENT(kv) int kv_encode(const char *src, char *dst, size_t srclen, size_t dstlen) { memcpy(dst, src, srclen < dstlen ? srclen : dstlen); return 0; }

int main(void)
{
    char b[8];
    kv_bump(b, sizeof b);
    kv_zero(b, 8);
    kv_wrap(b, 8);
    kv_name(b);
    return kv_put("k", 1) + kv_slice("ab", 1) + kv_get("k", 1, b, sizeof b) + kv_format(b, sizeof b) +
           (int)kv_read(0, b, sizeof b) + kv_store(1, b) + kv_greet("x", 0) +
           kv_encode("ab", b, 2, sizeof b) + (kv_grow(NULL, 4) != NULL);
}
