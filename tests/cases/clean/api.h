#include "qpm.h"
#include <stddef.h>

struct blob { size_t n; unsigned char *bytes QPM_COUNT(n); const char *label QPM_STRING; void *owner QPM_OPAQUE; };
struct point { int x, y; };
struct session;

int kv_get(const char *key QPM_STRING, char *out QPM_OUT(cap), size_t cap);
int kv_put(const char *key QPM_STRING, const void *val QPM_IN(len), size_t len);
void kv_scale(double *v QPM_INOUT(n * 2), size_t n);
int kv_blob(const struct blob *b);
struct point kv_move(struct point p, int dx);
int kv_sum(const int *v, int bias);
void kv_bump(int *counter);
QPM_OPAQUE struct session *kv_open(int flags);
int kv_close(struct session *s QPM_OPAQUE);
QPM_RETURNS_STRING char *kv_describe(int code);
int kv_each(int n, int (*fn)(int) QPM_CALLBACK);
QPM_INIT void kv_init(void);
