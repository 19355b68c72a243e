#include "qpm.h"
#include <stddef.h>

/* One struct that cannot be copied, taken by several crossing functions: one error here naming
 * every field in the way, and a note at each crossing. */
struct conn {
    int fd;
    char *rbuf;
    size_t rlen;
    char *wbuf QPM_COUNT(wlen);
    size_t wlen;
    const char *peer QPM_STRING;
    struct conn *next;
    void (*on_close)(struct conn *);
};

int conn_read(struct conn *c);
int conn_write(const struct conn *c);
size_t conn_pending(struct conn c);
struct conn conn_make(void);
