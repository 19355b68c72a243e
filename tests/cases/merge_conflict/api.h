#include "qpm.h"
#include <stddef.h>

int api_read(char *buf QPM_OUT(cap), size_t cap, size_t len);
int api_write(const char *buf QPM_IN(len), size_t len);
