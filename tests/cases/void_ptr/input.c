#include "qpm.h"
#include <stddef.h>

QPM_COMPONENT(store) int store_write(const void *data, size_t len) { (void)data; return (int)len; }
QPM_COMPONENT(store) int store_fill(void *buf, size_t n) { (void)buf; return (int)n; }
QPM_COMPONENT(store) int store_mystery(void *thing) { return thing != 0; }

int main(void) { char b[4] = {0}; return store_write(b, 4) + store_fill(b, 4) + store_mystery(b); }
