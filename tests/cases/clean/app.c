#include "api.h"
#include <stdlib.h>

extern int generation;

static int twice(int i) { return 2 * i; }

int main(void)
{
    char out[8];
    double v[4] = {1, 2, 3, 4};
    unsigned char bytes[2] = {1, 2};
    struct blob b = {2, bytes, "b", 0};
    struct point p = {1, 2};
    int counter = 0, one = 1;
    generation = 1;
    kv_put("k", "v", 1);
    kv_get("k", out, sizeof out);
    kv_scale(v, 2);
    kv_bump(&counter);
    p = kv_move(p, 3);
    struct session *s = kv_open(0);
    char *d = kv_describe(0);
    free(d);
    int r = kv_blob(&b) + kv_sum(&one, 1) + kv_each(3, twice) + kv_close(s);
    return r == 10 && counter == 1 && v[3] == 8 ? p.x : 100;
}
