#include "conn.h"

int conn_read(struct conn *c) { return c->rbuf != NULL; }
int conn_write(const struct conn *c) { return (int)c->wlen; }
size_t conn_pending(struct conn c) { return c.rlen + c.wlen; }
struct conn conn_make(void) { struct conn c = {0}; return c; }
