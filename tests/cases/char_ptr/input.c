#include "qpm.h"
#include <stddef.h>

QPM_COMPONENT(log) void log_line(const char *text) { (void)text; }
QPM_COMPONENT(log) int log_read(char *out, size_t cap) { (void)out; return (int)cap; }

int main(void) { char b[8]; log_line("x"); return log_read(b, sizeof b); }
