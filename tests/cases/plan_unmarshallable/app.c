#include "qpm.h"
#include <stddef.h>

int store_put(const void *data, size_t len);

int main(void) { char b[4] = {0}; return store_put(b, sizeof b); }
