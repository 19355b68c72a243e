#include "api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct session { int id; };
static int inits;

void calc_init(void) { inits++; }
int calc_inits(void) { return inits; }
int calc_add(int a, int b) { return a + b; }

long calc_sum(const int *v, size_t n)
{
    long s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

int calc_fill(char *out, size_t cap) { return snprintf(out, cap, "filled %zu", cap); }

void calc_scale(double *v, size_t n, double by)
{
    for (size_t i = 0; i < n * 2; i++)
        v[i] *= by;
}

int calc_upper(char *s)
{
    int n = 0;
    for (; s[n]; n++)
        s[n] = (char)toupper((unsigned char)s[n]);
    return n;
}

char *calc_greet(const char *who)
{
    size_t n = strlen(who) + 7;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "hello %s", who);
    return s;
}

struct point calc_move(struct point p, int dx)
{
    p.x += dx;
    p.w *= 2;
    return p;
}

struct session *calc_open(int id)
{
    struct session *s = malloc(sizeof *s);
    if (s)
        s->id = id;
    return s;
}

int calc_session_id(struct session *s) { return s->id; }
void calc_close(struct session *s) { free(s); }
int calc_pid(void) { return (int)getpid(); }

/* calc_chain and app_chain call each other: main -> calc -> main -> calc ... */
int calc_chain(int depth) { return depth <= 0 ? 0 : 1 + app_chain(depth - 1); }

int calc_via_relay(int x) { return relay_triple(x) + 1; }

int calc_bump_generation(void) { return ++generation; }

int calc_tags_total(struct tags t)
{
    int s = 0;
    for (size_t i = 0; i < t.n; i++)
        s += t.ids[i];
    return s;
}

long calc_digest(const struct request *r)
{
    long s = (long)strlen(r->name) * 1000 + calc_tags_total(r->tags);
    for (size_t i = 0; i < r->len * 2; i++)
        s += r->body[i];
    return s + (r->cookie == (void *)0x1234 ? 1000000 : 0);
}

long calc_digest_all(const struct request *rs, size_t n)
{
    long s = 0;
    for (size_t i = 0; i < n; i++)
        s += calc_digest(&rs[i]);
    return s;
}

int calc_each(int n, int (*fn)(int))
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += fn(i);
    return s;
}

static int twice_local(int v) { return 2 * v; }

int calc_use_app_apply(int x) { return app_apply(x, twice_local); }

long calc_nonzero(char *out, size_t n)
{
    long k = 0;
    for (size_t i = 0; i < n; i++)
        k += out[i] != 0;
    memset(out, 'z', n);
    return k;
}

int calc_names(int ret, const char *buf, size_t len, char *out, size_t n, int in, int rc, int w,
               int r, int i)
{
    for (size_t k = 0; k < n; k++)
        out[k] = k < len ? buf[k] : '.';
    return ret + in + rc + w + r + i;
}
