#include "qpm.h"

int parse(int x);
int twice(int x);
int hidden_one(int x);

/* Static: it runs where its caller main() runs, which is not where its QPM_COMPONENT says. */
QPM_COMPONENT(parse) static int helper(int x) { return x + 1; }

QPM_COMPONENT(parse) int parse(int x) { return helper(x) * 2; }

/* Inline: gcc may copy its body into main() whatever the flags. */
QPM_COMPONENT(parse) inline int twice(int x) { return 2 * x; }

/* Hidden: gcc binds calls of this file to it whatever the flags. */
QPM_COMPONENT(parse) __attribute__((visibility("hidden"))) int hidden_one(int x) { return x; }

/* Static, no QPM_COMPONENT: it runs with its callers, in both domains. */
static int shared_helper(int x) { return x - 1; }

QPM_COMPONENT(parse) int parse_more(int x) { return shared_helper(x); }

int main(void)
{
    return helper(1) + parse(2) + twice(3) + shared_helper(4) + parse_more(5) + hidden_one(0);
}
