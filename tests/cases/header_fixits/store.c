#include "api.h"

static int total;

int store_put(const char *buf, size_t len)
{
    int sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)buf[i];
    total += sum;
    return sum;
}

int store_each(int n, int (*fn)(int))
{
    int sum = 0;
    for (int i = 0; i < n; i++)
        sum += fn(i);
    return sum;
}

int store_total(void)
{
    return total;
}
