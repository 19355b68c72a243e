#include "api.h"

#include <stdlib.h>

struct box { int id; };

static struct ctx *slots[32];

void keeper_put(int slot, struct ctx *c) { slots[slot] = c; }
struct ctx *keeper_get(int slot) { return slots[slot]; }
struct ctx *keeper_echo(struct ctx *c) { return c; }

/* Hands a kept pointer back to main, which uses it. */
int keeper_visit(int slot) { return app_touch(slots[slot]); }

int keeper_submit(const struct job *j)
{
    /* The tag is one of keeper's own boxes, which main holds and passed back in the struct. */
    const struct box *b = j->tag;
    slots[10] = j->owner;
    slots[11] = j->pairs[0].a;
    slots[12] = j->pairs[1].a;
    for (size_t i = 0; i < j->n && i < 4; i++)
        slots[13 + i] = j->items[i].ref;
    return (int)j->n * 100 + j->pairs[0].k * 10 + j->pairs[1].k + (b ? b->id * 1000 : 0);
}

/* A job of main's pointers, built on this side, sent to main. */
int keeper_resubmit(void)
{
    struct item items[3] = {{1, slots[13]}, {2, slots[14]}, {4, slots[10]}};
    struct job j = {"again", slots[10], NULL, {{slots[11], 7}, {slots[12], 8}}, 3, items};
    return app_job(&j);
}

/* Main hands out a pointer as the result of a call from this domain. */
int keeper_find(int id)
{
    slots[20] = app_lookup(id);
    return slots[20] ? app_touch(slots[20]) : -1;
}

struct box *keeper_box(int id)
{
    struct box *b = malloc(sizeof *b);
    if (b)
        b->id = id;
    return b;
}

int keeper_box_id(struct box *b) { return b->id; }
void keeper_box_free(struct box *b) { free(b); }

/* Through main to other_iso and back: the value comes back as it went. */
int keeper_relay(int slot) { return other_hold(slots[slot]) == (void *)slots[slot]; }
int keeper_relay_box(struct box *b) { return other_hold(b) == (void *)b && b->id > 0; }
