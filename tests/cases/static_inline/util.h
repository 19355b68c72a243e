#include "qpm.h"

/* Compiled into every unit that includes this header: calls to these never cross, whatever the
 * header's name, and what they do counts where they are called. */
struct buf { char *data; unsigned len; };
extern int hits;

static inline unsigned buf_room(const struct buf *b) { return b->len; }
static inline void buf_hit(void) { hits++; }
static inline unsigned buf_use(const struct buf *b) { buf_hit(); return buf_room(b); }
