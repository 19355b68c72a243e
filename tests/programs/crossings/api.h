/* Every crossing the split build supports, in every direction. */
#include "qpm.h"
#include <stddef.h>

struct point { int x, y; double w; };

/* Travels with every crossing call, both ways (defined in app.c). */
extern int generation QPM_SHARED;
struct session;

/* Deep-copied structs: their pointer fields say what they point to. */
struct tags { size_t n; const int *ids QPM_COUNT(n); };
struct request {
    const char *name QPM_STRING;
    struct tags tags;
    size_t len;
    const unsigned char *body QPM_COUNT(len * 2);
    void *cookie QPM_OPAQUE;
};

/* calc.c: isolated in calc_iso. */
int calc_add(int a, int b);
long calc_sum(const int *v QPM_IN(n), size_t n);
int calc_fill(char *out QPM_OUT(cap), size_t cap);
void calc_scale(double *v QPM_INOUT(n * 2), size_t n, double by);
int calc_upper(char *s QPM_STRING);
QPM_RETURNS_STRING char *calc_greet(const char *who QPM_STRING);
struct point calc_move(struct point p, int dx);
QPM_OPAQUE struct session *calc_open(int id);
int calc_session_id(struct session *s QPM_OPAQUE);
void calc_close(struct session *s QPM_OPAQUE);
int calc_pid(void);
int calc_inits(void);
int calc_chain(int depth);
int calc_via_relay(int x);
int calc_bump_generation(void);
long calc_digest(const struct request *r);
long calc_digest_all(const struct request *rs QPM_IN(n), size_t n);
int calc_tags_total(struct tags t);
int calc_each(int n, int (*fn)(int) QPM_CALLBACK);
int calc_use_app_apply(int x);
/* Parameter names that a careless generator would collide with. */
int calc_names(int ret, const char *buf QPM_IN(len), size_t len, char *out QPM_OUT(n), size_t n,
               int in, int rc, int w, int r, int i);
/* Counts the bytes of out that are not zero when it is called, then fills it with 'z': an output
 * buffer starts zeroed in the callee, whatever memory it is made of. */
long calc_nonzero(char *out QPM_OUT(n), size_t n);
QPM_INIT void calc_init(void);

/* relay.c: isolated in relay_iso; called from calc (domain to domain). */
int relay_triple(int x);

/* app.c: stays in main; called back from calc (domain to main). */
int app_chain(int depth);
int app_apply(int x, int (*fn)(int) QPM_CALLBACK);
