#include "api.h"

#include <stdio.h>
#include <unistd.h>

int main(void)
{
    const int x[5] = {1, 2, 3, 4, 5};
    struct rec a[4] = {{2, x, "a"}, {3, x, NULL}, {0, NULL, "bc"}, {1, x + 4, NULL}};
    struct batch b = {{a[3], a[2]}, 2, a};              /* 5 + 2, then 4 + 6 */
    struct batch none = {{a[2], a[2]}, 0, NULL};        /* 2 + 2 */
    int d[3] = {1, 2, 3};
    store_double(d);
    long s[8] = {
        store_sum_array(a),             /* 4 + 6 + 2 + 5 = 17 */
        store_sum_marked(a),            /* 4 + 6 + 2 = 12 */
        store_sum_counted(a + 2, 2),    /* 2 + 5 = 7 */
        store_sum_batch(&b),            /* 17 */
        store_sum_batch_value(-67, b),  /* -50 */
        store_sum_batch_value(9, none), /* 13 */
        store_sum_ints(x),              /* 15 */
        d[0] + d[1] + d[2],             /* 12 */
    };
    long total = 0;
    for (int i = 0; i < 8; i++) {
        printf("%ld\n", s[i]);
        total += s[i];
    }
    printf("%ld\n", total);
    fprintf(stderr, "store runs in %s process\n", store_pid() == (int)getpid() ? "this" : "another");
    return 0;
}
