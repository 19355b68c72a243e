#include "qpm.h"
#include <stddef.h>

#define MAXNAME (64 + 1)

QPM_COMPONENT(io) int io_ok(const int *v QPM_IN(n * 2 + sizeof(int)), size_t n) { return v[0] + (int)n; }
QPM_COMPONENT(io) int io_unknown(const int *v QPM_IN(count), size_t n) { return v[0] + (int)n; }
QPM_COMPONENT(io) int io_float(const int *v QPM_IN(scale), double scale) { return v[0] + (int)scale; }
QPM_COMPONENT(io) int io_string(const int *v QPM_STRING) { return v[0]; }
QPM_COMPONENT(io) int io_not_pointer(int v QPM_OUT(1)) { return v; }
QPM_COMPONENT(io) int io_macro(char *name QPM_OUT(MAXNAME)) { return name[0]; }

int main(void)
{
    int v[8] = {0};
    return io_ok(v, 1) + io_unknown(v, 1) + io_float(v, 1.0) + io_string(v) + io_not_pointer(1) + io_macro(0);
}
