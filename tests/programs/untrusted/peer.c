#include "api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int peer_fill(char *out, size_t cap) { return snprintf(out, cap, "peer %zu", cap); }

int peer_upper(char *s)
{
    int n = 0;
    for (; s[n]; n++)
        s[n] = (char)toupper((unsigned char)s[n]);
    epoch++;
    return n;
}

char *peer_name(int i)
{
    char *s = malloc(16);
    if (s)
        snprintf(s, 16, "peer-%d", i);
    return s;
}

long peer_sum(const struct rec *a, size_t n)
{
    long s = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < a[i].n; j++)
            s += a[i].v[j];
    return s;
}

int peer_each(int n, int (*fn)(int))
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += fn(i);
    return s;
}

double peer_map(double x, double (*fn)(double)) { return fn(x) + 0.5; }
int peer_logged(int x) { return app_log(x) * 2; }
