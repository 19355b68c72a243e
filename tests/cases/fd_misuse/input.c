/* QPM_FD annotates an int parameter or a function returning int, nothing else. */
#include "qpm.h"
#include <stddef.h>

typedef int fd_t;
struct conn { int sock QPM_FD; };
int listener QPM_FD;

int conn_send(int sock QPM_FD, const char *text QPM_STRING);  /* fine */
QPM_FD fd_t conn_open(const char *path QPM_STRING);           /* fine: a typedef of int */
QPM_FD int conn_accept(const int listening QPM_FD);           /* fine: const */
int conn_wait(long sock QPM_FD);
int conn_pair(int *socks QPM_FD);
QPM_FD long conn_dup(int sock QPM_FD);
QPM_FD char *conn_name(int sock QPM_FD);
int conn_both(int sock QPM_FD QPM_OPAQUE);
QPM_FD void conn_close(int sock QPM_FD);

int main(void)
{
    struct conn c = {conn_accept(listener)};
    int socks[2];
    conn_close(c.sock);
    return conn_send(c.sock, "x") + conn_open("p") + conn_wait(0) + conn_pair(socks) + (int)conn_dup(0) +
           (conn_name(0) != NULL) + conn_both(0);
}
