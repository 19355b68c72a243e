#include "store.h"

static int count;

void store_on_read(void *ctx, int revents) { (void)ctx; count += revents; }
void store_on_write(void *ctx, int revents) { (void)ctx; count -= revents; }
void store_each(void (*fn)(int n)) { fn(count); }
