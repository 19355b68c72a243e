#include "qpm.h"
#include <stdarg.h>

QPM_COMPONENT(log) int log_printf(int level, ...)
{
    va_list ap;
    va_start(ap, level);
    int first = va_arg(ap, int);
    va_end(ap);
    return first;
}

int main(void) { return log_printf(1, 2); }
