#include "qpm.h"
#include <stddef.h>

int store_put(const void *data, size_t len) { (void)data; return (int)len; }
