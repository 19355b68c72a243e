/* The attacker: a domain whose code sends main values it did not get from main. */
#include "api.h"

#include <stdint.h>

static struct ctx *taken;

void evil_take(struct ctx *c) { taken = c; }

struct ctx *evil_forge(int how, unsigned long addr)
{
    switch (how) {
    case 0: return (struct ctx *)(uintptr_t)(1ull << 63 | 12345);  /* a token nobody handed out */
    case 1: return (struct ctx *)(uintptr_t)(1ull << 62 | 4096);   /* main's mark for a domain's handle */
    case 2: return (struct ctx *)(uintptr_t)((uintptr_t)taken + 1); /* the next token */
    case 3: return taken;                                           /* the real one */
    default: return (struct ctx *)(uintptr_t)addr;                  /* a raw address of main's */
    }
}

int evil_check(struct ctx *c, unsigned long addr) { return (uintptr_t)c == addr; }

static struct ctx *forged(int how)
{
    return how ? taken : (struct ctx *)(uintptr_t)(1ull << 63 | 777);
}

/* Calls main with a forged handle. */
int evil_touch(int how) { return app_touch(forged(how)); }

/* Calls main with a forged handle in each place a struct can hold one. */
int evil_job(int how)
{
    struct ctx *bad = forged(0);
    struct item items[2] = {{1, taken}, {2, how == 1 ? bad : taken}};
    struct job j = {"evil", how == 0 ? bad : taken, NULL, {{taken, 1}, {how == 2 ? bad : taken, 2}}, 2, items};
    return app_job(&j);
}

int evil_ping(void) { return 42; }
