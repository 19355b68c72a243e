#include "qpm.h"
#include <stddef.h>

/* Structs that hold one another: a cycle through counted pointers (node -> edge -> node), a struct
 * that reaches the cycle from outside it (holder), and one that many hold (leaf).  What a struct's
 * problems are must not depend on which function's parameter asked first. */
struct leaf { int *p; };
struct node;
struct edge { size_t n; struct node *to QPM_COUNT(n); };
struct node { size_t n; struct edge *out QPM_COUNT(n); struct leaf l; };
struct holder { struct edge e; struct leaf l2; };
struct pair { struct leaf a; struct leaf b; };

QPM_COMPONENT(bus) int via_holder(const struct holder *h) { return (int)h->e.n; }
QPM_COMPONENT(bus) int via_edge(const struct edge *e) { return (int)e->n; }
QPM_COMPONENT(bus) int via_node(const struct node *n) { return (int)n->n; }
QPM_COMPONENT(bus) int via_pair(const struct pair *p) { return p->a.p != 0; }
QPM_COMPONENT(bus) int via_leaf(const struct leaf *l) { return l->p != 0; }

int main(void)
{
    struct holder h = {0};
    struct node n = {0};
    struct pair p = {0};
    return via_holder(&h) + via_edge(&h.e) + via_node(&n) + via_pair(&p) + via_leaf(&p.a);
}
