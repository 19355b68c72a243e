/* QPM_OPAQUE values in every direction: main's pointers handed to domains and back, a domain's
 * own handles, deep-copied structs holding both, relays between two domains, and a domain that
 * forges them. */
#include "qpm.h"
#include <stddef.h>

/* Main's own objects: only main looks inside. */
struct ctx { int id; char name[12]; int touched; };
/* keeper's own objects: only keeper looks inside. */
struct box;

struct item { int weight; struct ctx *ref QPM_OPAQUE; };
struct pair { struct ctx *a QPM_OPAQUE; int k; };
struct job {
    const char *name QPM_STRING;
    struct ctx *owner QPM_OPAQUE;
    void *tag QPM_OPAQUE;
    struct pair pairs[2];
    size_t n;
    const struct item *items QPM_COUNT(n);
};

/* keeper.c: isolated in keeper_iso; keeps main's pointers in slots. */
void keeper_put(int slot, struct ctx *c QPM_OPAQUE);
QPM_OPAQUE struct ctx *keeper_get(int slot);
QPM_OPAQUE struct ctx *keeper_echo(struct ctx *c QPM_OPAQUE);
int keeper_visit(int slot);
int keeper_submit(const struct job *j);
int keeper_resubmit(void);
int keeper_find(int id);
QPM_OPAQUE struct box *keeper_box(int id);
int keeper_box_id(struct box *b QPM_OPAQUE);
void keeper_box_free(struct box *b QPM_OPAQUE);
int keeper_relay(int slot);
int keeper_relay_box(struct box *b QPM_OPAQUE);

/* other.c: isolated in other_iso; called from main and from keeper (relayed by main). */
QPM_OPAQUE void *other_hold(void *p QPM_OPAQUE);

/* evil.c: isolated in evil_iso; the domain's code forges what it sends. */
void evil_take(struct ctx *c QPM_OPAQUE);
QPM_OPAQUE struct ctx *evil_forge(int how, unsigned long addr);
int evil_check(struct ctx *c QPM_OPAQUE, unsigned long addr);
int evil_touch(int how);
int evil_job(int how);
int evil_ping(void);

/* app.c: main; called from the domains. */
int app_touch(struct ctx *c QPM_OPAQUE);
int app_job(const struct job *j);
QPM_OPAQUE struct ctx *app_lookup(int id);
