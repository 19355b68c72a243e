#include "qpm.h"

typedef int (*handler)(int);
struct entry { const char *name; handler fn; };

QPM_COMPONENT(plugins) int up(int x) { return x + 1; }
QPM_COMPONENT(plugins) int down(int x) { return x - 1; }
QPM_COMPONENT(plugins) int twice(int x) { return x * 2; }
QPM_COMPONENT(plugins) int half(int x) { return x / 2; }
QPM_COMPONENT(plugins) int same(int x) { return x; }

handler hook = up;
handler hooks[2] = { down, &up };
struct entry table[] = { { "up", up }, { "down", down } };
handler all[] = { up, down, twice, half, same };

int run(struct entry *e, int i, int x)
{
    x = hook(x);
    x = (*hook)(x);
    x = (hook)(x);
    x = (**hook)(x);
    x = e->fn(x);
    x = (*e->fn)(x);
    x = hooks[i](x);
    x = table[i].fn(x);
    x = ((handler)e->fn)(x);
    x = all[i](x);
    return x;
}

int main(void) { return run(&table[0], 1, 0); }
