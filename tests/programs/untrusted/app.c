#include "api.h"

#include <stdio.h>
#include <stdlib.h>

int epoch;

int app_log(int x) { return x + 1; }

static int twice(int x) { return 2 * x; }
static double half(double x) { return x / 2; }

int main(void)
{
    char buf[12] = "";
    char word[] = "quiet";
    const int v[3] = {1, 2, 3};
    struct rec r[2] = {{3, v}, {1, v + 2}};
    epoch = 1;
    printf("fill %d %s\n", peer_fill(buf, sizeof buf), buf);
    int up = peer_upper(word);
    printf("upper %d %s %d\n", up, word, epoch);
    char *name = peer_name(7);
    printf("name %s\n", name);
    free(name);
    printf("sum %ld\n", peer_sum(r, 2));
    printf("each %d\n", peer_each(4, twice));
    printf("map %.2f\n", peer_map(3, half));
    printf("logged %d\n", peer_logged(20));
    return 0;
}
