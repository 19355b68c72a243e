#include "api.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static struct ctx ctxs[3] = {{1, "one", 0}, {2, "two", 0}, {3, "three", 0}};
static int jobs_run;

/* Called from keeper with a pointer main handed it: main dereferences it. */
int app_touch(struct ctx *c)
{
    c->touched++;
    return c->id * 100 + c->touched;
}

int app_job(const struct job *j)
{
    jobs_run++;
    int s = j->owner->id * 1000 + (int)strlen(j->name);
    for (int i = 0; i < 2; i++)
        s += (j->pairs[i].a ? j->pairs[i].a->id * 10 : 0) + j->pairs[i].k;
    for (size_t i = 0; i < j->n; i++)
        s += j->items[i].ref ? j->items[i].ref->id * j->items[i].weight * 100 : 0;
    return s;
}

struct ctx *app_lookup(int id)
{
    for (int i = 0; i < 3; i++)
        if (ctxs[i].id == id)
            return &ctxs[i];
    return NULL;
}

/* Run by the split build only: the domain's code is the attacker. */
static int forge(void)
{
    static struct ctx secret = {7, "secret", 0};
    unsigned long addr = (unsigned long)(uintptr_t)&secret;
    evil_take(&secret);
    printf("real token %s\n", evil_forge(3, 0) == &secret ? "main's" : "WRONG");
    printf("forged token %s\n", evil_forge(0, 0) ? "USED" : "refused");
    printf("forged mark %s\n", evil_forge(1, 0) ? "USED" : "refused");
    evil_take(&secret);
    printf("next token %s\n", evil_forge(2, 0) ? "USED" : "refused");
    evil_take(&secret);
    printf("touch real %d\n", evil_touch(1));
    printf("touch forged %d touched %d\n", evil_touch(0), secret.touched);
    for (int how = 0; how < 3; how++) {
        evil_take(&secret);
        int before = jobs_run;
        printf("job forged %d %d run %d\n", how, evil_job(how), jobs_run - before);
    }
    /* A raw address of main's is the domain's own handle as far as main knows: main holds it as
     * a value that is no address of its own, and it goes back to the domain as it came. */
    struct ctx *raw = evil_forge(4, addr);
    printf("raw address %s, back %d\n", raw == &secret ? "USED" : "not main's", evil_check(raw, addr));
    printf("ping %d\n", evil_ping());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "forge") == 0)
        return forge();
    for (int i = 0; i < 3; i++)
        keeper_put(i, &ctxs[i]);
    for (int i = 0; i < 3; i++) {
        struct ctx *c = keeper_get(i);
        printf("get %d: %s %d %s\n", i, c == &ctxs[i] ? "same" : "DIFFERENT", c->id, c->name);
    }
    /* Values that are no addresses cross as themselves. */
    struct ctx *small = (struct ctx *)(uintptr_t)0x1234, *minus = (struct ctx *)(intptr_t)-22;
    printf("echo %d null %d small %d minus %d\n", keeper_echo(&ctxs[1]) == &ctxs[1],
           keeper_echo(NULL) == NULL, keeper_echo(small) == small, keeper_echo(minus) == minus);
    int v1 = keeper_visit(0), v2 = keeper_visit(0);
    printf("visit %d %d touched %d\n", v1, v2, ctxs[0].touched);

    struct box *b = keeper_box(42);
    printf("box %d\n", keeper_box_id(b));
    struct item items[2] = {{3, &ctxs[2]}, {5, &ctxs[0]}};
    struct job j = {"job", &ctxs[1], b, {{&ctxs[0], 1}, {NULL, 2}}, 2, items};
    printf("submit %d\n", keeper_submit(&j));
    struct ctx *want[] = {&ctxs[1], &ctxs[0], NULL, &ctxs[2], &ctxs[0]};
    for (int s = 10; s < 15; s++)
        printf("slot %d: %s\n", s, keeper_get(s) == want[s - 10] ? "same" : "DIFFERENT");
    printf("resubmit %d\n", keeper_resubmit());
    printf("job direct %d\n", app_job(&j));
    int found = keeper_find(3);
    printf("find %d: %s\n", found, keeper_get(20) == &ctxs[2] ? "same" : "DIFFERENT");

    printf("relay %d %d box %d\n", keeper_relay(0), keeper_relay(10), keeper_relay_box(b));
    printf("other %s %s\n", other_hold(&ctxs[1]) == (void *)&ctxs[1] ? "same" : "DIFFERENT",
           other_hold(b) == (void *)b ? "same" : "DIFFERENT");
    keeper_box_free(b);
    printf("touched %d %d %d\n", ctxs[0].touched, ctxs[1].touched, ctxs[2].touched);
    return 0;
}
