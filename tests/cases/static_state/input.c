#include "qpm.h"

int parse(int x);

static int seen;

/* Static: it runs with its callers, here on both sides of the boundary, and so does what it
 * writes. */
static int count(int x) { seen++; return x; }

QPM_COMPONENT(parse) int parse(int x) { return count(x) * 2; }

int main(void)
{
    return count(1) + parse(2);
}
