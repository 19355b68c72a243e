#include "qpm.h"
#include "store.h"

struct fd_handler {
    int fd;
    void (*handler)(void *ctx, int revents);
    void *ctx;
};

static struct fd_handler fds[] = {
    { 3, store_on_read, 0 },
    { 4, store_on_write, 0 },
};

static void show(int n) { (void)n; }

void loop(void)
{
    for (int i = 0; i < 2; i++) {
        struct fd_handler *fdn = &fds[i];
        (*fdn->handler)(fdn->ctx, 1);
    }
    store_each(show);
}

int main(void)
{
    loop();
    return 0;
}
