#include "worker.h"

int worker_work(int x)
{
    return x * 3 + 1;
}

int worker_crash(int x)
{
    int *volatile p = 0;
    return *p + x;      /* a real NULL dereference */
}
