#include "target.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct handle { int id; };

int target_add(int a, int b) { return a + b; }

long target_sum(const int *v, size_t n)
{
    long s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

int target_fill(char *out, size_t cap)
{
    memset(out, 'f', cap);
    return (int)cap;
}

void target_scale(double *v, size_t n, double by)
{
    for (size_t i = 0; i < n; i++)
        v[i] *= by;
}

int target_upper(char *s)
{
    int n = 0;
    for (; *s; s++, n++)
        *s = (char)toupper((unsigned char)*s);
    return n;
}

char *target_greet(const char *who)
{
    char *out = malloc(strlen(who) + 8);
    if (out)
        sprintf(out, "hello, %s", who);
    return out;
}

struct handle *target_open(int id)
{
    struct handle *h = malloc(sizeof *h);
    if (h)
        h->id = id;
    return h;
}

int target_handle_id(struct handle *h) { return h ? h->id : -1; }

int target_tags(const struct tags *t)
{
    int s = 0;
    for (size_t i = 0; i < t->n; i++)
        s += t->ids[i];
    return s;
}

int target_each(int n, int (*fn)(int))
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += fn(i);
    return s;
}

int target_ask_driver(int x) { shared_turns++; return driver_echo(x) + 1; }
