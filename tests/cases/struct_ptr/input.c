#include "qpm.h"
#include <stddef.h>

struct good { size_t n; int *items QPM_COUNT(n); const char *name QPM_STRING; void *owner QPM_OPAQUE; };
struct bad { size_t n; int *items; };

QPM_COMPONENT(db) int db_put_good(const struct good *g) { return (int)g->n; }
QPM_COMPONENT(db) int db_put_bad(const struct bad *b) { return (int)b->n; }
QPM_COMPONENT(db) int db_by_value(struct bad b) { return (int)b.n; }

int main(void)
{
    int items[2] = {1, 2};
    struct good g = {2, items, "g", 0};
    struct bad b = {2, items};
    return db_put_good(&g) + db_put_bad(&b) + db_by_value(b);
}
