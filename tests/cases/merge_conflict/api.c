#include "api.h"

int api_read(char *buf QPM_OUT(len), size_t cap, size_t len) { (void)buf; return (int)(cap + len); }
int api_write(const char *buf, size_t len) { (void)buf; return (int)len; }
