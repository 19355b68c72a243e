#include "qpm.h"

void store_on_read(void *ctx QPM_OPAQUE, int revents);
void store_on_write(void *ctx QPM_OPAQUE, int revents);
void store_each(void (*fn)(int n) QPM_CALLBACK);
