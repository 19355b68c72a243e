#include "api.h"
#include <stdlib.h>
#include <string.h>

QPM_FILE_COMPONENT(store);

int generation QPM_SHARED;
static int table[16];

void kv_init(void) { memset(table, 0, sizeof table); }
int kv_get(const char *key, char *out, size_t cap) { (void)key; if (cap) out[0] = 0; return generation; }
int kv_put(const char *key, const void *val, size_t len) { (void)key; (void)val; table[len % 16]++; return 0; }
void kv_scale(double *v, size_t n) { for (size_t i = 0; i < n * 2; i++) v[i] *= 2; }
int kv_blob(const struct blob *b) { return (int)b->n; }
struct point kv_move(struct point p, int dx) { p.x += dx; return p; }
int kv_sum(const int *v, int bias) { return *v + bias; }
void kv_bump(int *counter) { (*counter)++; }
struct session *kv_open(int flags) { return (struct session *)malloc((size_t)flags + 1); }
int kv_close(struct session *s) { free(s); return 0; }
char *kv_describe(int code) { return strdup(code ? "bad" : "ok"); }
int kv_each(int n, int (*fn)(int)) { int t = 0; for (int i = 0; i < n; i++) t += fn(i); return t; }
